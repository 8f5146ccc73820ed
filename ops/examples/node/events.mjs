// Follow docqueue's completion events from Node, with only the npm `redis` package.
//
//   npm install                      # in this folder (package.json: redis ^4.7)
//   REDIS_URL=redis://localhost:6379/0 node events.mjs [--batch B] [--since ID] [--until-finished]
//
// Prints one JSON object per line: the event (the stream entry's `data` field, the same JSON a
// webhook receives) with its `stream_id`, like `docqueue events --json`. The stream is
// `docqueue:events`; every entry also has flat string fields (type, batch, status, error_kind...)
// for readers that filter without parsing JSON (docqueue/contract/event.schema.json,
// $defs/stream_entry). Plain XREAD BLOCK from the last id seen: restart with --since <last id>
// to resume without gaps (or use XREADGROUP with a consumer group to share the work and ack).
import { createClient } from 'redis';

const STREAM = 'docqueue:events';

function option(name) {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

const batch = option('--batch');
const untilFinished = process.argv.includes('--until-finished');
let last = option('--since') ?? '0'; // 0: from the oldest entry kept; $: only new ones
if (untilFinished && !batch) {
  console.error('--until-finished needs --batch');
  process.exit(2);
}

const client = createClient({ url: process.env.REDIS_URL ?? 'redis://localhost:6379/0' });
client.on('error', (err) => {
  console.error(`redis: ${err.message}`);
  process.exit(1);
});
await client.connect();

for (;;) {
  // BLOCK 5000: wait up to 5 s for entries after `last`, then ask again
  const reply = await client.xRead({ key: STREAM, id: last }, { BLOCK: 5000, COUNT: 100 });
  if (!reply) continue;
  for (const { messages } of reply) {
    for (const { id, message } of messages) {
      last = id;
      if (batch && message.batch !== batch) continue;
      const event = JSON.parse(message.data);
      console.log(JSON.stringify({ stream_id: id, ...event }));
      if (untilFinished && message.type === 'batch.finished') {
        await client.quit();
        process.exit(0);
      }
    }
  }
}
