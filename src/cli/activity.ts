/**
 * Tells the daemon a VM is in use while a banger session runs in it, so
 * `auto_stop_stale_after` does not stop a VM under a user's feet.
 *
 * @module
 */
import { z } from "zod";
import { ACTIVITY_HEARTBEAT_MS } from "../daemon/stale.ts";

/** What {@linkcode withActivity} needs of the daemon client. */
export interface ActivitySink {
  call(method: string, params: unknown, schema: z.ZodType): Promise<unknown>;
}

/**
 * Runs `fn`, reporting activity on `vm` when it begins, every
 * {@linkcode ACTIVITY_HEARTBEAT_MS} while it runs, and when it ends. A
 * failed report never fails the session.
 */
export async function withActivity<T>(
  daemon: ActivitySink,
  vm: string,
  fn: () => Promise<T>,
  heartbeatMs = ACTIVITY_HEARTBEAT_MS,
): Promise<T> {
  const touch = () =>
    daemon.call("vm.touch", { ref: vm }, z.unknown()).catch(() => {});
  await touch();
  const timer = setInterval(touch, heartbeatMs);
  try {
    return await fn();
  } finally {
    clearInterval(timer);
    await touch();
  }
}
