// A service written with the official NATS JavaScript client (npm `nats`),
// without any of Aether's code, that uses an actor's history as
// docs/WIRE_FORMAT.md describes it: it reads every event Aether wrote, by
// consumer and by subject, placing writes by the chain rule, and checks each
// field (subject, headers, each event's actor, version, id, type, schema
// version, time, data and metadata, in the documented member order) and the
// last version read through the stream leader; it tails the namespace's
// stream for new events; and it appends an event after the last version it
// read, which Aether then reads, and sees a second write of that version
// refused.
//
//   node --harmony-json-parse-with-source interop.mjs <nats-url> <spec.json>
//
// spec.json (written by the test): {"namespace", "layout" (the stream's layout
// the test expects: "per-actor" or "per-write"), "actors": [{"type", "key",
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
  // The stream's layout, from its description ("aether events, layout <name>";
  // none: per-write, the layout of streams written before layouts were recorded).
  kind: "per-write",
  prefix: "aether events, layout ",
  read(info) {
    const d = info.config.description ?? "";
    const name = d.startsWith(this.prefix) ? d.slice(this.prefix.length) : "per-write";
    if (name !== "per-actor" && name !== "per-write") fail(`stream ${info.config.name}: layout ${name} is not one this reader knows`);
    this.kind = name;
    return name;
  },
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
  // Every write of an actor: its one subject (per-actor), or one subject per write.
  actorFilter(ns, type, key) {
    const subject = `aether.${this.nsToken(ns)}.ev.${type}.${key}`;
    return this.kind === "per-actor" ? subject : `${subject}.*`;
  },
  // Every write of the namespace.
  namespaceFilter(ns) {
    return `aether.${this.nsToken(ns)}.ev.>`;
  },
  // The subject of a write whose first version is `first`.
  writeSubject(ns, type, key, first) {
    const subject = `aether.${this.nsToken(ns)}.ev.${type}.${key}`;
    return this.kind === "per-actor" ? subject : `${subject}.${first}`;
  },
  // The members of each event of a write's payload, in their order.
  members: ["actor", "version", "id", "type", "schema_version", "timestamp_ns", "data", "metadata"],
  // One stored write (a consumer's message or a direct get's) -> its actor,
  // its first and last versions and its events; checks the headers and that
  // each event's actor and version agree with the write's place.
  decodeWrite(ns, msg) {
    const tokens = msg.subject.split(".");
    const perActor = this.kind === "per-actor";
    if (tokens.length !== (perActor ? 5 : 6) || tokens[0] !== "aether" || tokens[1] !== this.nsToken(ns) || tokens[2] !== "ev") {
      fail(`unexpected subject ${msg.subject} in the ${this.kind} layout`);
    }
    const h = msg.headers ?? msg.header;
    const batch = parseJson(msg.string());
    if (!Array.isArray(batch) || batch.length === 0) fail(`write ${msg.seq} is not a JSON array of events`);
    // Per actor, a write's first version is its first event's; per write, the subject's last token.
    const first = perActor ? batch[0].version : Number(tokens[5]);
    const last = Number(h?.get("Aether-Last-Version"));
    const writeId = h?.get("Aether-Write-Id");
    const expected = h?.get("Nats-Expected-Last-Subject-Sequence");
    if (perActor ? !/^[0-9]+$/.test(expected ?? "") || Number(expected) >= msg.seq : expected !== "0") {
      fail(`write ${msg.seq} was published expecting ${expected}`);
    }
    if (last !== first + batch.length - 1) fail(`write ${msg.seq}: Aether-Last-Version ${last}, first ${first}, ${batch.length} events`);
    if (writeId !== batch[0].id) fail(`write ${msg.seq}: Aether-Write-Id ${writeId}, first event ${batch[0].id}`);
    const actor = `${ns}/${tokens[3]}/${tokens[4]}`;
    batch.forEach((e, i) => {
      if (JSON.stringify(Object.keys(e)) !== JSON.stringify(this.members)) fail(`write ${msg.seq}: members ${Object.keys(e)}`);
      if (e.actor !== actor) fail(`write ${msg.seq} on ${msg.subject}: an event of ${e.actor}`);
      if (e.version !== first + i) fail(`write ${msg.seq} starting at ${first}: element ${i} says version ${e.version}`);
    });
    return { type: tokens[3], key: tokens[4], first, last, seq: msg.seq, events: batch };
  },
  // Places writes (in stream order) into the history: the chain from version
  // 1, each write starting one after the previous one's last version, the
  // first stored write of a place winning.
  chain(writes) {
    const byFirst = new Map();
    for (const w of writes) if (!byFirst.has(w.first)) byFirst.set(w.first, w);
    const events = [];
    for (let next = 1, w; (w = byFirst.get(next)); next = w.last + 1) events.push(...w.events);
    return events;
  },
  // How to append `events` after `version`: subject, headers, payload, and
  // the subject sequence to expect (per actor: the actor's last write's
  // stream sequence, `lastSeq`; per write: 0, an empty subject).
  encodeAppend(ns, type, key, version, events, lastSeq) {
    const h = headers();
    h.set("Aether-Write-Id", events[0].id);
    h.set("Aether-Last-Version", String(version + events.length));
    const payload = "[" + events.map((e, i) =>
      `{"actor":${JSON.stringify(`${ns}/${type}/${key}`)},"version":${version + 1 + i},` +
      `"id":${JSON.stringify(e.id)},"type":${JSON.stringify(e.type)},"schema_version":${e.schema_version},` +
      `"timestamp_ns":${e.timestamp_ns},"data":${e.data},"metadata":${JSON.stringify(e.metadata)}}`).join(",") + "]";
    const expect = this.kind === "per-actor" ? lastSeq : 0;
    return { subject: this.writeSubject(ns, type, key, version + 1), headers: h, payload, expect };
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
async function readAll(js, ns, stream, filter) {
  const consumer = await js.consumers.get(stream, { filterSubjects: filter });
  const writes = [];
  for (;;) {
    const batch = await consumer.fetch({ max_messages: 256, expires: 2000 });
    let n = 0;
    let done = false;
    for await (const m of batch) {
      writes.push(layout.decodeWrite(ns, m));
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
  const kind = layout.read(await jsm.streams.info(stream));
  if (spec.layout && kind !== spec.layout) fail(`stream ${stream} is ${kind}, the test wrote ${spec.layout}`);

  // 1. Read each actor's whole history, both ways the format describes, and check every field.
  let read = 0;
  for (const actor of spec.actors) {
    const where = `${actor.type}.${actor.key}`;
    const writes = await readAll(js, ns, stream, layout.actorFilter(ns, actor.type, actor.key));
    for (const w of writes) if (w.type !== actor.type || w.key !== actor.key) fail(`a write of ${w.type}.${w.key} under ${where}`);
    const events = layout.chain(writes);
    if (events.length !== actor.events.length) fail(`${where}: ${events.length} events read by consumer, ${actor.events.length} written`);
    events.forEach((e, i) => check(actor, e, actor.events[i]));
    // By subject: per write, the first message on each write's subject, from
    // version 1 on; per actor, the messages of the actor's subject one by one.
    const bySubject = [];
    const walked = [];
    for (let next = 1, seq = 1; ; ) {
      let m;
      try {
        m = await jsm.direct.getMessage(stream, { next_by_subj: layout.writeSubject(ns, actor.type, actor.key, next), seq });
      } catch (e) {
        if (e.code === "404" || /no message found/i.test(e.message)) break;
        throw e;
      }
      const w = layout.decodeWrite(ns, m);
      walked.push(w);
      bySubject.push(...w.events);
      next = w.last + 1;
      if (layout.kind === "per-actor") seq = m.seq + 1;
    }
    if (layout.kind === "per-actor" && !same(layout.chain(walked), bySubject)) fail(`${where}: the walk is no chain`);
    if (!same(bySubject, events)) fail(`${where}: read by subject differs from read by consumer`);
    // The last version, through the stream leader.
    const last = await jsm.streams.getMessage(stream, { last_by_subj: layout.actorFilter(ns, actor.type, actor.key) });
    if (Number(last.header.get("Aether-Last-Version")) !== actor.events.length) {
      fail(`${where}: last version ${last.header.get("Aether-Last-Version")}, ${actor.events.length} written`);
    }
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
    for await (const m of messages) tailed.push(layout.decodeWrite(ns, m));
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
    if (events.length !== actor.events.length) fail(`${actor.type}.${actor.key}: ${events.length} tailed, ${actor.events.length} written`);
    events.forEach((e, i) => check(actor, e, actor.events[i]));
  }
  messages.stop();
  process.stdout.write(`tailed ${wanted}\n`);

  // 3. Append one event after the actor's current version, as the rules say:
  //    the last version read through the stream leader, then the next subject.
  const a = spec.append;
  const lastMsg = await jsm.streams.getMessage(stream, { last_by_subj: layout.actorFilter(ns, a.type, a.key) });
  const current = Number(lastMsg.header.get("Aether-Last-Version"));
  if (current !== a.version) fail(`${a.type}.${a.key} is at version ${current}, the test wrote ${a.version}`);
  const event = {
    id: randomBytes(16).toString("hex"),
    type: a.type === "ledger" ? "ledger.noted" : "noted",
    schema_version: 2,
    timestamp_ns: BigInt(Date.now()) * 1000000n + 123n,
    data: JSON.stringify({ from: "javascript", amount: 7, nested: { list: [1, "two", null] } }),
    metadata: { source: "js" },
  };
  const w = layout.encodeAppend(ns, a.type, a.key, current, [event], lastMsg.seq);
  const ack = await js.publish(w.subject, w.payload, { headers: w.headers, expect: { lastSubjectSequence: w.expect } });
  process.stdout.write(`appended ${JSON.stringify({ ...event, data: JSON.parse(event.data), timestamp_ns: String(event.timestamp_ns), version: a.version + 1, sequence: ack.seq })}\n`);

  // 4. A second write of the same version is refused by the server.
  const again = layout.encodeAppend(ns, a.type, a.key, current, [{ ...event, id: randomBytes(16).toString("hex") }], lastMsg.seq);
  try {
    await js.publish(again.subject, again.payload, { headers: again.headers, expect: { lastSubjectSequence: again.expect } });
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
