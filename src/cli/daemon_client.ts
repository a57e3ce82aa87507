/**
 * The CLI's connection to the owner daemon, starting it (and, as root, the
 * helper) in the background when no system install provides them.
 *
 * @module
 */
import type { z } from "zod";
import type { Paths } from "../paths.ts";
import { PingResultSchema } from "../protocol/daemon.ts";
import { RpcError } from "../protocol/envelope.ts";
import { HelperPingResultSchema } from "../protocol/helper.ts";
import { call, type CallOptions } from "../rpc/client.ts";
import { note } from "./output.ts";
import { startService } from "../role_worker.ts";

/** How long a freshly started daemon or helper gets to answer. */
const START_TIMEOUT_MS = 15_000;

/** A CLI-side handle on the daemon. */
export class DaemonClient {
  constructor(readonly paths: Paths) {}

  /** Calls `method`; starts the daemon first when it is not running. */
  async call<T extends z.ZodType>(
    method: string,
    params: unknown,
    schema: T,
    options: CallOptions = {},
  ): Promise<z.infer<T>> {
    await this.ensureRunning();
    return await call(this.paths.daemonSocket, method, params, schema, options);
  }

  /** Calls `method` only if a daemon is already running. */
  async callIfRunning<T extends z.ZodType>(
    method: string,
    params: unknown,
    schema: T,
  ): Promise<z.infer<T> | undefined> {
    if (!(await answers(this.paths.daemonSocket, "ping"))) return undefined;
    return await call(this.paths.daemonSocket, method, params, schema);
  }

  /**
   * Starts the helper (when running as root without a system install) and
   * the daemon unless they answer already, and says so once. The helper is
   * checked on its own: a daemon that outlived its helper needs a new one.
   */
  async ensureRunning(): Promise<void> {
    const uid = Deno.uid() ?? 0;
    if (uid === 0 && !(await isSystemInstall(this.paths))) {
      if (!(await answers(this.paths.helperSocket, "ping"))) {
        // The owner is whoever runs banger: the daemon runs as that user
        // too (under sudo, root), and the helper serves only the owner.
        await startService({ role: "helper", ownerUid: uid });
        await waitFor(this.paths.helperSocket, "helper");
        note(`banger: started the root helper (log: ${this.paths.helperLog})`);
      }
    }
    if (await answers(this.paths.daemonSocket, "ping")) return;
    await startService({ role: "daemon" });
    await waitFor(this.paths.daemonSocket, "daemon");
    note(`banger: started the daemon (log: ${this.paths.daemonLog})`);
  }
}

/** True when `banger system install` set this machine up (systemd units). */
export async function isSystemInstall(
  paths: { installFile: string },
): Promise<boolean> {
  return await Deno.stat(paths.installFile).then(() => true, () => false);
}

async function answers(socket: string, method: string): Promise<boolean> {
  try {
    await call(socket, method, {}, PingResultSchema.or(HelperPingResultSchema));
    return true;
  } catch (error) {
    // A daemon that answers with an error is still running.
    return error instanceof RpcError;
  }
}

async function waitFor(socket: string, what: string): Promise<void> {
  const deadline = Date.now() + START_TIMEOUT_MS;
  while (Date.now() < deadline) {
    if (await answers(socket, "ping")) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(
    `Cannot start the ${what}: it did not answer on "${socket}" within ${
      START_TIMEOUT_MS / 1000
    }s; see its log`,
  );
}
