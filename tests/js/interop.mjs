// A service written with the official NATS JavaScript client (npm `nats`),
// without any of Aether's code, that uses an actor's history as
// docs/WIRE_FORMAT.md describes it: it reads every event Aether wrote and
// checks each field, tails the namespace's stream for new events, and
// appends an event that Aether then reads.
//
//   node --harmony-json-parse-with-source interop.mjs <nats-url> <spec.json>
//
// spec.json (written by the test): {"namespace", "actors": [{"type", "key",
// "events": [{"id", "version", "type", "schema_version", "timestamp_ns",
// "data", "metadata"}]}], "append": {"type", "key", "version"}}, with
// timestamp_ns as a string (it exceeds 2^53) and data as JSON text.
//
// Line protocol on stdout, driven by the test through stdin:
//   read <events>            every written event read back and checked
//   tailing                  a tail of the stream is open; the test writes
//                            more events and then sends their spec as one
//                            JSON line ({"actors": [...]} as above)
//   tailed <events>          those arrived on the tail and were checked
//   appended <json>          the event this service appended (its fields)
//   refused <code>           a second append of the same version was refused
//   fail <what>              a check failed (the process exits 1)
import { connect, headers, DeliverPolicy } from "nats";
import { readFileSync } from "node:fs";
import { createInterface } from "node:readline";
import { randomBytes } from "node:crypto";

function fail(what) {
  process.stdout.write(`fail ${what.replace(/\n/g, " ")}\n`);
  process.exit(1);
}

// Event timestamps are nanoseconds since the Unix epoch, beyond a double's
// 53 bits: parse them exactly (Node.js 20 needs --harmony-json-parse-with-source).
function parseJson(text) {
  return JSON.parse(text, (key, value, context) => {
    if (key === "timestamp_ns" && typeof value === "number") {
      if (!context || typeof context.source !== "string") fail("JSON.parse gives no source text: run node with --harmony-json-parse-with-source");
      return BigInt(context.source);
    }
    return value;
  });
}

// -- the wire format (docs/WIRE_FORMAT.md)

const layout = {
  // A namespace's stream: `{ns}_events` for one token.
  streamName(ns) {
    if (ns.includes(".")) {
      return ns.replace(/_/g, "_-").replace(/\./g, "__") + "-events";
    }
    return `${ns}_events`;
  },
  // A namespace as one subject token.
  nsToken(ns) {
    return ns.replace(/\./g, ":");
  },
  // Every write of an actor.
  actorFilter(ns, type, key) {
    return `aether.${this.nsToken(ns)}.ev.${type}.${key}.*`;
  },
  // Every write of the namespace.
  namespaceFilter(ns) {
    return `aether.${this.nsToken(ns)}.ev.>`;
  },
  // The subject of a write whose first version is `first`.
  writeSubject(ns, type, key, first) {
    return `aether.${this.nsToken(ns)}.ev.${type}.${key}.${first}`;
  },
  // One stored write -> its actor and its events with their versions.
  decodeWrite(msg) {
    const tokens = msg.subject.split(".");
    if (tokens.length !== 6 || tokens[0] !== "aether" || tokens[2] !== "ev") fail(`unexpected subject ${msg.subject}`);
    const first = Number(tokens[5]);
    const last = Number(msg.headers?.get("Aether-Last-Version"));
    const writeId = msg.headers?.get("Aether-Write-Id");
    const batch = parseJson(msg.string());
    if (!Array.isArray(batch) || batch.length === 0) fail(`write ${msg.seq} is not a JSON array of events`);
    if (last !== first + batch.length - 1) fail(`write ${msg.seq}: Aether-Last-Version ${last}, first ${first}, ${batch.length} events`);
    if (writeId !== batch[0].id) fail(`write ${msg.seq}: Aether-Write-Id ${writeId}, first event ${batch[0].id}`);
    return {
      type: tokens[3],
      key: tokens[4],
      events: batch.map((e, i) => ({ ...e, version: first + i })),
    };
  },
  // How to append `events` after `version`: subject, headers, payload.
  encodeAppend(ns, type, key, version, events) {
    const h = headers();
    h.set("Aether-Write-Id", events[0].id);
    h.set("Aether-Last-Version", String(version + events.length));
    const payload = "[" + events.map((e) =>
      `{"id":${JSON.stringify(e.id)},"type":${JSON.stringify(e.type)},"schema_version":${e.schema_version},` +
      `"timestamp_ns":${e.timestamp_ns},"data":${e.data},"metadata":${JSON.stringify(e.metadata)}}`).join(",") + "]";
    return { subject: this.writeSubject(ns, type, key, version + 1), headers: h, payload };
  },
};

// -- checks

function same(a, b) {
  return JSON.stringify(a, (k, v) => (typeof v === "bigint" ? `${v}n` : v)) ===
         JSON.stringify(b, (k, v) => (typeof v === "bigint" ? `${v}n` : v));
}

function sortedObject(o) {
  return Object.fromEntries(Object.entries(o ?? {}).sort(([a], [b]) => (a < b ? -1 : 1)));
}

// Checks one read event against what the test says Aether wrote.
function check(actor, got, want) {
  const where = `${actor.type}.${actor.key} version ${want.version}`;
  if (got.version !== want.version) fail(`${where}: read as version ${got.version}`);
  if (got.id !== want.id) fail(`${where}: id ${got.id}, written ${want.id}`);
  if (got.type !== want.type) fail(`${where}: type ${got.type}, written ${want.type}`);
  if (got.schema_version !== want.schema_version) fail(`${where}: schema version ${got.schema_version}, written ${want.schema_version}`);
  if (got.timestamp_ns !== BigInt(want.timestamp_ns)) fail(`${where}: time ${got.timestamp_ns}, written ${want.timestamp_ns}`);
  if (!same(got.data, parseJson(want.data))) fail(`${where}: data ${JSON.stringify(got.data)}, written ${want.data}`);
  if (!same(sortedObject(got.metadata), sortedObject(want.metadata))) {
    fail(`${where}: metadata ${JSON.stringify(got.metadata)}, written ${JSON.stringify(want.metadata)}`);
  }
}

// Reads every write of a filter, from the stream's start, with an ordered consumer.
async function readAll(js, stream, filter) {
  const consumer = await js.consumers.get(stream, { filterSubjects: filter });
  const writes = [];
  for (;;) {
    const batch = await consumer.fetch({ max_messages: 256, expires: 2000 });
    let n = 0;
    let done = false;
    for await (const m of batch) {
      writes.push(layout.decodeWrite(m));
      ++n;
      if (m.info.pending === 0) done = true;
    }
    if (done || n === 0) break;
  }
  return writes;
}

async function main() {
  const [url, specFile] = process.argv.slice(2);
  if (!url || !specFile) fail("usage: interop.mjs <nats-url> <spec.json>");
  const spec = JSON.parse(readFileSync(specFile, "utf8"));
  const ns = spec.namespace;
  const stream = layout.streamName(ns);
  const nc = await connect({ servers: url, name: "aether-js-interop" });
  const js = nc.jetstream();
  const jsm = await nc.jetstreamManager();

  // 1. Read each actor's whole history and check every field.
  let read = 0;
  for (const actor of spec.actors) {
    const writes = await readAll(js, stream, layout.actorFilter(ns, actor.type, actor.key));
    const events = [];
    for (const w of writes) {
      if (w.type !== actor.type || w.key !== actor.key) fail(`a write of ${w.type}.${w.key} under ${actor.type}.${actor.key}`);
      events.push(...w.events);
    }
    events.sort((a, b) => a.version - b.version);
    if (events.length !== actor.events.length) fail(`${actor.type}.${actor.key}: ${events.length} events read, ${actor.events.length} written`);
    events.forEach((e, i) => check(actor, e, actor.events[i]));
    read += events.length;
  }
  process.stdout.write(`read ${read}\n`);

  // 2. Tail the namespace from the next stream sequence on.
  const info = await jsm.streams.info(stream);
  const tail = await js.consumers.get(stream, {
    filterSubjects: layout.namespaceFilter(ns),
    deliver_policy: DeliverPolicy.StartSequence,
    opt_start_seq: info.state.last_seq + 1,
  });
  const tailed = [];
  const messages = await tail.consume();
  (async () => {
    for await (const m of messages) tailed.push(layout.decodeWrite(m));
  })().catch((e) => fail(`tail: ${e.message}`));
  process.stdout.write("tailing\n");

  const lines = createInterface({ input: process.stdin })[Symbol.asyncIterator]();
  const next = await lines.next();
  if (next.done) fail("no spec of the tailed events");
  const more = JSON.parse(next.value);
  const wanted = more.actors.reduce((n, a) => n + a.events.length, 0);
  const deadline = Date.now() + 30000;
  const count = () => tailed.reduce((n, w) => n + w.events.length, 0);
  while (count() < wanted && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  if (count() !== wanted) fail(`${count()} events tailed, ${wanted} written`);
  for (const actor of more.actors) {
    const events = tailed.filter((w) => w.type === actor.type && w.key === actor.key).flatMap((w) => w.events);
    events.sort((a, b) => a.version - b.version);
    if (events.length !== actor.events.length) fail(`${actor.type}.${actor.key}: ${events.length} tailed, ${actor.events.length} written`);
    events.forEach((e, i) => check(actor, e, actor.events[i]));
  }
  messages.stop();
  process.stdout.write(`tailed ${wanted}\n`);

  // 3. Append one event after the actor's current version, as the rules say.
  const a = spec.append;
  const event = {
    id: randomBytes(16).toString("hex"),
    type: a.type === "ledger" ? "ledger.noted" : "noted",
    schema_version: 2,
    timestamp_ns: BigInt(Date.now()) * 1000000n + 123n,
    data: JSON.stringify({ from: "javascript", amount: 7, nested: { list: [1, "two", null] } }),
    metadata: { source: "js" },
  };
  const w = layout.encodeAppend(ns, a.type, a.key, a.version, [event]);
  const ack = await js.publish(w.subject, w.payload, { headers: w.headers, expect: { lastSubjectSequence: 0 } });
  process.stdout.write(`appended ${JSON.stringify({ ...event, data: JSON.parse(event.data), timestamp_ns: String(event.timestamp_ns), version: a.version + 1, sequence: ack.seq })}\n`);

  // 4. A second write of the same version is refused by the server.
  const again = layout.encodeAppend(ns, a.type, a.key, a.version, [{ ...event, id: randomBytes(16).toString("hex") }]);
  try {
    await js.publish(again.subject, again.payload, { headers: again.headers, expect: { lastSubjectSequence: 0 } });
    fail("a second write of the same version was stored");
  } catch (e) {
    const code = e.api_error?.err_code;
    if (code !== 10071) fail(`a second write of the same version: ${e.message} (${code}), not 10071`);
    process.stdout.write(`refused ${code}\n`);
  }
  await nc.drain();
  process.exit(0); // stdin stays open
}

main().catch((e) => fail(e.stack ?? String(e)));
