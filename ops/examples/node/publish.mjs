// Publish inline documents to docqueue from Node, with only the npm `redis` package.
//
//   REDIS_URL=redis://127.0.0.1:6379/0 node publish.mjs TASK BATCH DOCUMENTS.jsonl \
//       [--params '{"labels": ["contract", "invoice"]}'] [--correlation-id ID] [--per-message N]
//
// DOCUMENTS.jsonl holds one {"id": ..., "text": ..., "metadata": {...}} per line. Each message is
// the envelope of docqueue/contract/envelope.schema.json around the kwargs of
// <task>.message.schema.json: kombu's Redis format (Celery message protocol 2), the body base64 of
// the JSON [args, kwargs, embed], LPUSHed onto the list named after the task (workers BRPOP from the
// other end, so the oldest message runs first). Prints {"batch", "messages", "documents"} as JSON.
import { randomUUID } from "node:crypto";
import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { createClient } from "redis";

const TASKS = ["classify", "summarize", "translate", "review", "generate"];
const BATCH_ID = /^[A-Za-z0-9][A-Za-z0-9._:-]*$/; // at most 128 characters
const MAX_MESSAGE_BYTES = 16 * 2 ** 20; // DOCQUEUE_MAX_MESSAGE_BYTES: larger items are dead-lettered

function fail(message) {
  console.error(`publish.mjs: ${message}`);
  process.exit(2);
}

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    params: { type: "string", default: "{}" },
    "correlation-id": { type: "string" },
    "per-message": { type: "string", default: "50" },
  },
});
const [task, batch, file] = positionals;
if (!TASKS.includes(task) || !batch || !file) {
  fail(`usage: node publish.mjs (${TASKS.join("|")}) BATCH DOCUMENTS.jsonl [--params JSON] ` +
    "[--correlation-id ID] [--per-message N]");
}
if (batch.length > 128 || !BATCH_ID.test(batch)) fail(`batch id ${JSON.stringify(batch)} must match ${BATCH_ID} (<= 128)`);
let params;
try {
  params = JSON.parse(values.params);
} catch (e) {
  fail(`--params is not JSON: ${e.message}`);
}
const perMessage = Number.parseInt(values["per-message"], 10);
if (!(perMessage >= 1)) fail("--per-message must be a positive integer");

// Invalid documents would fail alone on the worker (invalid_document); refusing them here says so sooner.
const documents = readFileSync(file, "utf8").split("\n").filter((line) => line.trim()).map((line, n) => {
  const doc = JSON.parse(line);
  if (typeof doc.id !== "string" || doc.id.length < 1 || doc.id.length > 512) fail(`line ${n + 1}: id must be a 1-512 character string`);
  if (typeof doc.text !== "string") fail(`line ${n + 1}: text must be a string`);
  return doc.metadata === undefined ? { id: doc.id, text: doc.text } : { id: doc.id, text: doc.text, metadata: doc.metadata };
});

function envelope(kwargs) {
  const taskId = randomUUID();
  const body = [[], kwargs, { callbacks: null, errbacks: null, chain: null, chord: null }];
  return JSON.stringify({
    body: Buffer.from(JSON.stringify(body), "utf8").toString("base64"),
    "content-encoding": "utf-8",
    "content-type": "application/json",
    headers: {
      lang: "js", task: `docqueue.${task}`, id: taskId, root_id: taskId, parent_id: null, group: null,
      retries: 0, eta: null, expires: null, timelimit: [null, null],
    },
    properties: {
      // kept on every job of this message: docqueue_results.correlation_id
      correlation_id: values["correlation-id"] ?? taskId,
      delivery_mode: 2,
      priority: 0, // 0-2 go on the list named after the queue
      body_encoding: "base64",
      delivery_tag: randomUUID(),
      delivery_info: { exchange: "", routing_key: task },
    },
  });
}

const client = createClient({ url: process.env.REDIS_URL ?? "redis://localhost:6379/0" });
client.on("error", (e) => fail(`redis: ${e.message}`));
await client.connect();
let messages = 0;
for (let start = 0; start < documents.length; start += perMessage) {
  const item = envelope({ v: 1, batch, params, documents: documents.slice(start, start + perMessage) });
  if (Buffer.byteLength(item) > MAX_MESSAGE_BYTES) fail(`message ${messages + 1} is over 16 MiB: lower --per-message`);
  await client.lPush(task, item);
  messages += 1;
}
await client.quit();
console.log(JSON.stringify({ batch, messages, documents: documents.length }));
