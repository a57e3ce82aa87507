/**
 * The daemon's DNS server: A records for `<name>.vm` on 127.0.0.1:42069,
 * over UDP and TCP, wire format by `dns-packet`.
 *
 * Answers come from a lookup the daemon supplies (the state database's
 * running VMs), not from a copy kept here: start, stop and delete change
 * the answer the moment they change the VM's row, and a restarted daemon
 * answers as soon as reconcile has run, with nothing to rebuild or forget.
 *
 * @module
 */
import dgram from "node:dgram";
import { Buffer } from "node:buffer";
import dnsPacket from "dns-packet";
import type { Logger } from "../util/log.ts";

/** Where the daemon's DNS server listens. */
export const DNS_ADDRESS = "127.0.0.1";
/** The DNS server's port (UDP and TCP). */
export const DNS_PORT = 42069;
/** The domain banger answers for. */
export const VM_DOMAIN = "vm";
/** Seconds a resolver may cache an answer: addresses move on stop/start. */
export const DNS_TTL = 5;
/** A TCP client that says nothing for this long is dropped. */
const TCP_IDLE_MS = 10_000;
/** Largest TCP message accepted (a query is a few dozen bytes). */
const MAX_TCP_MESSAGE = 4096;

/** Returns the IPv4 address of the running VM called `name`, if any. */
export type VmAddressLookup = (name: string) => string | undefined;

/** The shape of dns-packet's decoded messages that banger uses. */
interface Question {
  name: string;
  type: string;
  class?: string;
}
interface Packet {
  id?: number;
  type?: "query" | "response";
  flags?: number;
  questions?: Question[];
  answers?: unknown[];
}
interface DnsPacketApi {
  decode(buf: Uint8Array): Packet;
  encode(packet: Record<string, unknown>): Uint8Array;
  AUTHORITATIVE_ANSWER: number;
  RECURSION_DESIRED: number;
}
const wire = dnsPacket as unknown as DnsPacketApi;

/** RCODE values used in answers. */
const RCODE = { noError: 0, formErr: 1, nxDomain: 3, notImp: 4, refused: 5 };
const VM_LABEL = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;

/**
 * Builds the answer to one wire-format query. Malformed queries get
 * FORMERR when they carry an id, else no answer (undefined).
 */
export function answerQuery(
  query: Uint8Array,
  lookup: VmAddressLookup,
): Uint8Array | undefined {
  let packet: Packet;
  try {
    packet = wire.decode(Buffer.from(query));
  } catch {
    // Without a parsable header there is no id to answer to.
    if (query.byteLength < 2) return undefined;
    const id = (query[0]! << 8) | query[1]!;
    return respond(id, 0, [], [], RCODE.formErr);
  }
  const id = packet.id ?? 0;
  const rd = (packet.flags ?? 0) & wire.RECURSION_DESIRED;
  const questions = packet.questions ?? [];
  if (packet.type !== "query" || questions.length !== 1) {
    return respond(id, rd, questions, [], RCODE.formErr);
  }
  const question = questions[0]!;
  const name = question.name.toLowerCase().replace(/\.$/, "");
  const suffix = `.${VM_DOMAIN}`;
  if (!name.endsWith(suffix)) {
    // Not banger's zone: a resolver routed it here by mistake.
    return respond(id, rd, questions, [], RCODE.refused);
  }
  const label = name.slice(0, -suffix.length);
  const address = VM_LABEL.test(label) ? lookup(label) : undefined;
  if (address === undefined) {
    return respond(id, rd, questions, [], RCODE.nxDomain);
  }
  // The name exists; only A has data (no AAAA: guests are IPv4 only).
  const answers = question.type === "A" || question.type === "ANY"
    ? [{
      type: "A",
      class: "IN",
      name: question.name,
      ttl: DNS_TTL,
      data: address,
    }]
    : [];
  return respond(id, rd, questions, answers, RCODE.noError);
}

function respond(
  id: number,
  rd: number,
  questions: Question[],
  answers: unknown[],
  rcode: number,
): Uint8Array {
  return wire.encode({
    id,
    type: "response",
    flags: wire.AUTHORITATIVE_ANSWER | rd | rcode,
    questions,
    answers,
  });
}

/** Options for {@linkcode startDnsServer}. */
export interface DnsServerOptions {
  lookup: VmAddressLookup;
  log: Logger;
  hostname?: string;
  /** 0 picks a free port (tests). */
  port?: number;
}

/** A running DNS server. */
export interface DnsServer {
  /** The port it listens on (UDP and TCP share it). */
  port: number;
  close(): Promise<void>;
}

/**
 * Listens on UDP and TCP. Requires `--allow-net` for the address. Throws
 * when the port is taken (e.g. by another banger daemon in this network
 * namespace).
 */
export async function startDnsServer(
  o: DnsServerOptions,
): Promise<DnsServer> {
  const hostname = o.hostname ?? DNS_ADDRESS;
  const tcp = Deno.listen({ hostname, port: o.port ?? DNS_PORT });
  const port = (tcp.addr as Deno.NetAddr).port;
  let udp: dgram.Socket;
  try {
    udp = await bindUdp(hostname, port, o);
  } catch (error) {
    tcp.close();
    throw error;
  }
  const conns = new Set<Deno.Conn>();
  const serving = (async () => {
    try {
      for await (const conn of tcp) {
        conns.add(conn);
        void serveTcp(conn, o).finally(() => conns.delete(conn));
      }
    } catch (error) {
      if (!(error instanceof Deno.errors.BadResource)) {
        o.log.warn("dns tcp listener failed", { error: String(error) });
      }
    }
  })();
  o.log.info("dns listening", { address: `${hostname}:${port}` });
  return {
    port,
    close: async () => {
      tcp.close();
      for (const conn of conns) {
        try {
          conn.close();
        } catch {
          // Closed by its peer meanwhile.
        }
      }
      await serving;
      await new Promise<void>((resolve) => udp.close(() => resolve()));
    },
  };
}

function bindUdp(
  hostname: string,
  port: number,
  o: DnsServerOptions,
): Promise<dgram.Socket> {
  const socket = dgram.createSocket("udp4");
  socket.on("message", (message: Uint8Array, remote: dgram.RemoteInfo) => {
    const answer = answerQuery(message, o.lookup);
    if (answer) socket.send(answer, remote.port, remote.address);
  });
  return new Promise((resolve, reject) => {
    socket.once("error", reject);
    socket.bind(port, hostname, () => {
      socket.off("error", reject);
      socket.on(
        "error",
        (error: Error) => o.log.warn("dns udp error", { error: String(error) }),
      );
      resolve(socket);
    });
  });
}

/** TCP DNS: each message is preceded by its length in two bytes. */
async function serveTcp(conn: Deno.Conn, o: DnsServerOptions): Promise<void> {
  let pending: Uint8Array = new Uint8Array(0);
  const chunk = new Uint8Array(MAX_TCP_MESSAGE + 2);
  try {
    while (true) {
      const n = await readWithTimeout(conn, chunk, TCP_IDLE_MS);
      if (n === null) return;
      pending = concat(pending, chunk.subarray(0, n));
      while (pending.byteLength >= 2) {
        const length = (pending[0]! << 8) | pending[1]!;
        if (length > MAX_TCP_MESSAGE) return;
        if (pending.byteLength < 2 + length) break;
        const query = pending.slice(2, 2 + length);
        pending = pending.slice(2 + length);
        const answer = answerQuery(query, o.lookup);
        if (!answer) return;
        const framed = new Uint8Array(2 + answer.byteLength);
        framed[0] = answer.byteLength >> 8;
        framed[1] = answer.byteLength & 0xff;
        framed.set(answer, 2);
        let offset = 0;
        while (offset < framed.byteLength) {
          offset += await conn.write(framed.subarray(offset));
        }
      }
    }
  } catch {
    // The client went away or sent garbage; either way the answer is moot.
  } finally {
    try {
      conn.close();
    } catch {
      // Already closed.
    }
  }
}

async function readWithTimeout(
  conn: Deno.Conn,
  buffer: Uint8Array,
  ms: number,
): Promise<number | null> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<null>((resolve) => {
    timer = setTimeout(() => resolve(null), ms);
  });
  try {
    return await Promise.race([conn.read(buffer), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.byteLength + b.byteLength);
  out.set(a);
  out.set(b, a.byteLength);
  return out;
}
