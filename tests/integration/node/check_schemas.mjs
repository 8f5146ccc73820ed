// Compiles every shipped JSON Schema with ajv in its default strict mode (draft 2020-12, formats
// from ajv-formats), then validates the instances given on stdin: {"schema file": [instance, ...]}.
// Prints one JSON line per problem and exits 1 if there is any: a second validator, written by
// others, reads the contract as a Node integrator would.
import { readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import Ajv2020 from "ajv/dist/2020.js";
import addFormats from "ajv-formats";

const dir = process.argv[2];
const instances = JSON.parse(readFileSync(0, "utf8") || "{}");
let problems = 0;
for (const name of readdirSync(dir).filter((f) => f.endsWith(".schema.json")).sort()) {
  const ajv = new Ajv2020();  // strict by default: an unknown keyword or format is an error
  addFormats(ajv);
  let validate;
  try {
    validate = ajv.compile(JSON.parse(readFileSync(join(dir, name), "utf8")));
  } catch (e) {
    problems++;
    console.log(JSON.stringify({ schema: name, compile: String(e.message || e) }));
    continue;
  }
  for (const [i, instance] of (instances[name] || []).entries()) {
    if (!validate(instance)) {
      problems++;
      console.log(JSON.stringify({ schema: name, instance: i, errors: validate.errors }));
    }
  }
  console.log(JSON.stringify({ schema: name, compiled: true, checked: (instances[name] || []).length }));
}
process.exit(problems ? 1 : 0);
