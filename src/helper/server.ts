/**
 * The root helper: a short, fixed list of typed privileged operations on a
 * socket whose every connection is checked with SO_PEERCRED (uid 0 or the
 * owner only) and whose every argument is checked by ./validate.ts.
 *
 * @module
 */
import {
  BridgeEnsureParamsSchema,
  TapCreateParamsSchema,
  TapDeleteParamsSchema,
} from "../protocol/helper.ts";
import { type Cidr, formatIpv4 } from "../util/ipv4.ts";
import type { Logger } from "../util/log.ts";
import { encodeLine, LineReader } from "../rpc/lines.ts";
import { newOpId, RequestSchema, RpcError } from "../protocol/envelope.ts";
import {
  type Connection,
  type Handler,
  handler,
  serveConnection,
} from "../rpc/server.ts";
import { peerCredentials, UnixListener } from "../ffi/libc.ts";
import {
  checkAddress,
  checkBridgeName,
  checkOwner,
  checkTapName,
} from "./validate.ts";
import { createTap, deleteTap, ensureBridge } from "./network.ts";
import { jailHandlers, type JailPolicy } from "./jail_ops.ts";
import { VERSION } from "../version.ts";
import { z } from "zod";

/** What the helper's operations are checked against. */
export interface HelperPolicy {
  ownerUid: number;
  cidr: Cidr;
  /** Jailed Firecracker operations; absent, they are unknown methods. */
  jail?: JailPolicy | undefined;
}

/** The helper's operations, each validating its arguments first. */
export function helperHandlers(
  policy: HelperPolicy,
  peer: { uid: number },
  stop: () => void = () => {},
): Record<string, Handler> {
  return {
    shutdown: handler(z.unknown(), () => {
      stop();
      return Promise.resolve({ stopping: true });
    }),
    ping: handler(z.unknown(), () =>
      Promise.resolve({
        version: VERSION,
        pid: Deno.pid,
        ownerUid: policy.ownerUid,
        peerUid: peer.uid,
      })),
    "bridge.ensure": handler(BridgeEnsureParamsSchema, async (p) => {
      const name = checkBridgeName(p.name);
      const address = formatIpv4(
        checkAddress(policy.cidr, p.address, p.prefix),
      );
      await ensureBridge(name, address, p.prefix);
      return { name };
    }),
    "tap.create": handler(TapCreateParamsSchema, async (p) => {
      const name = checkTapName(p.name);
      const bridge = checkBridgeName(p.bridge);
      const owner = checkOwner(policy.ownerUid, p.owner);
      await createTap(name, bridge, owner);
      return { name };
    }),
    "tap.delete": handler(TapDeleteParamsSchema, async (p) => {
      const name = checkTapName(p.name);
      await deleteTap(name);
      return { name };
    }),
    ...(policy.jail ? jailHandlers(policy.jail) : {}),
  };
}

/**
 * Serves helper requests on `socketPath` until asked to shut down.
 *
 * The socket is created 0600 and owned by the owner, in a 0711 directory;
 * SO_PEERCRED is still checked on every connection, since file modes are
 * not the only way to reach a socket.
 */
export async function serveHelper(
  socketPath: string,
  policy: HelperPolicy,
  log: Logger,
): Promise<void> {
  const listener = await UnixListener.listen(socketPath);
  await Deno.chmod(socketPath, 0o600);
  await Deno.chown(socketPath, policy.ownerUid, null);
  log.info("listening", { socket: socketPath, ownerUid: policy.ownerUid });
  const stopped = Promise.withResolvers<"stop">();
  const stop = () => stopped.resolve("stop");
  while (true) {
    const next = await Promise.race([listener.accept(), stopped.promise]);
    if (next === "stop") break;
    const conn = next;
    let uid: number;
    try {
      uid = peerCredentials(conn.fd).uid;
    } catch (error) {
      log.warn("peer credentials unavailable", { error: String(error) });
      conn.close();
      continue;
    }
    if (uid !== 0 && uid !== policy.ownerUid) {
      const op = newOpId();
      log.warn("refused connection", { op, peerUid: uid });
      const refusal = new RpcError(
        "unauthorized",
        `Refusing connection from uid ${uid}: only root and the owner uid ${policy.ownerUid} may use the helper`,
        op,
      );
      void refuse(conn, refusal);
      continue;
    }
    void serveConnection(
      conn,
      helperHandlers(policy, { uid }, stop),
      log.with({ peerUid: uid }),
    );
  }
  // Let the shutdown answer reach its caller before the process ends.
  await new Promise((r) => setTimeout(r, 100));
  log.info("stopped");
  await Deno.remove(socketPath).catch(() => {});
}

async function refuse(conn: Connection, error: RpcError): Promise<void> {
  try {
    // The request is read first so the refusal answers it rather than
    // racing the peer's write with a close.
    const line = await new LineReader(conn).next();
    const id = RequestSchema.safeParse(safeParse(line)).data?.id ?? "?";
    await conn.write(encodeLine({
      kind: "error",
      id,
      error: { code: error.code, message: error.message, op: error.op },
    }));
  } catch {
    // The refused peer may already be gone.
  } finally {
    conn.close();
  }
}

function safeParse(line: string | null): unknown {
  try {
    return line === null ? undefined : JSON.parse(line);
  } catch {
    return undefined;
  }
}
