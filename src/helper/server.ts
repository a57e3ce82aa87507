/**
 * The root helper: a short, fixed list of typed privileged operations on a
 * socket whose every connection is checked with SO_PEERCRED (uid 0 or the
 * owner only) and whose every argument is checked by ./validate.ts.
 *
 * @module
 */
import {
  BridgeEnsureParamsSchema,
  NatDownParamsSchema,
  NatUpParamsSchema,
  ResolverRouteParamsSchema,
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
  checkGuestAddress,
  checkOwner,
  checkPort,
  checkTapName,
  checkTapOfAddress,
} from "./validate.ts";
import { createTap, deleteTap, ensureBridge, linkExists } from "./network.ts";
import { ensureNatBase, natDown, natUp } from "./nat.ts";
import { routeVmDomain } from "./resolver.ts";
import { TapPool } from "./tap_pool.ts";
import { jailHandlers, type JailPolicy } from "./jail_ops.ts";
import { VERSION } from "../version.ts";
import { z } from "zod";

/** What the helper's operations are checked against. */
export interface HelperPolicy {
  ownerUid: number;
  cidr: Cidr;
  /** Warm taps to keep (config `tap_pool_size`). */
  tapPoolSize?: number;
  /** Jailed Firecracker operations; absent, they are unknown methods. */
  jail?: JailPolicy | undefined;
}

/** The helper's operations, each validating its arguments first. */
export function helperHandlers(
  policy: HelperPolicy,
  peer: { uid: number },
  stop: () => void = () => {},
  pool?: TapPool,
  log?: Logger,
): Record<string, Handler> {
  // Refills run after the answer; their failures only cost speed.
  const refill = (bridge: string) => {
    void pool?.refill(bridge).catch((error) =>
      log?.warn("tap pool refill failed", { error: String(error) })
    );
  };
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
      // Guests without --nat must never be routed off the bridge.
      await ensureNatBase(name);
      refill(name);
      return { name };
    }),
    "tap.create": handler(TapCreateParamsSchema, async (p) => {
      const name = checkTapName(p.name);
      const bridge = checkBridgeName(p.bridge);
      const owner = checkOwner(policy.ownerUid, p.owner);
      // A stale tap of that name may belong to a dead VM: never reuse it.
      if (await linkExists(name)) await deleteTap(name);
      if (!(await pool?.claim(name, bridge))) {
        await createTap(name, bridge, owner);
      }
      refill(bridge);
      return { name };
    }),
    "tap.delete": handler(TapDeleteParamsSchema, async (p) => {
      const name = checkTapName(p.name);
      await deleteTap(name);
      return { name };
    }),
    "tap.pool.status": handler(z.unknown(), () =>
      Promise.resolve({
        size: policy.tapPoolSize ?? 0,
        ready: pool?.ready ?? [],
      })),
    "nat.up": handler(NatUpParamsSchema, async (p) => {
      const tap = checkTapName(p.tap);
      const value = checkGuestAddress(policy.cidr, p.address);
      checkTapOfAddress(policy.cidr, tap, value);
      const address = formatIpv4(value);
      const bridge = checkBridgeName(p.bridge);
      await natUp({ tap, address, bridge });
      return { tap };
    }),
    "nat.down": handler(NatDownParamsSchema, async (p) => {
      const tap = checkTapName(p.tap);
      return { tap, removed: await natDown(tap) };
    }),
    "resolver.route": handler(ResolverRouteParamsSchema, async (p) => {
      const bridge = checkBridgeName(p.bridge);
      const port = checkPort(p.port);
      return await routeVmDomain(bridge, port);
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
  const pool = new TapPool({
    size: policy.tapPoolSize ?? 0,
    owner: policy.ownerUid,
    log,
  });
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
      helperHandlers(policy, { uid }, stop, pool, log),
      log.with({ peerUid: uid }),
    );
  }
  // Let the shutdown answer reach its caller before the process ends.
  await new Promise((r) => setTimeout(r, 100));
  // Warm taps are the helper's own; VMs' taps stay with their VMs.
  await pool.drain();
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
