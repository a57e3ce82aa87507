/**
 * Host network plumbing: banger's bridge and per-VM taps. Every function
 * takes values already checked by ./validate.ts and runs `ip` with argv.
 *
 * @module
 */
import { CommandError, run } from "../util/exec.ts";

/** Failure of one named privileged step. */
export class NetworkStepError extends Error {
  constructor(readonly step: string, cause: unknown) {
    super(
      `${step}: ${cause instanceof Error ? cause.message : String(cause)}`,
      { cause },
    );
    this.name = "NetworkStepError";
  }
}

async function step(name: string, args: string[]): Promise<void> {
  try {
    await run("ip", args);
  } catch (error) {
    throw new NetworkStepError(name, error);
  }
}

/** True when a network interface called `name` exists. */
export async function linkExists(name: string): Promise<boolean> {
  const result = await run("ip", ["-j", "link", "show", "dev", name], {
    okCodes: [0, 1],
  });
  return result.code === 0;
}

/**
 * Creates the bridge with its address when missing, and brings it up.
 * Idempotent: an existing bridge keeps its links.
 */
export async function ensureBridge(
  name: string,
  address: string,
  prefix: number,
): Promise<void> {
  if (!(await linkExists(name))) {
    // The bridge is the guests' default gateway and the host's leg in the
    // guest network. Two creates can race here; the loser finds the
    // winner's bridge and carries on.
    await step(`Cannot create bridge "${name}"`, [
      "link",
      "add",
      name,
      "type",
      "bridge",
    ]).catch(async (error) => {
      if (!(await linkExists(name))) throw error;
    });
  }

  const addresses = await run("ip", ["-j", "addr", "show", "dev", name]);
  const present = (JSON.parse(addresses.stdout) as {
    addr_info?: { local?: string; prefixlen?: number }[];
  }[]).some((link) =>
    link.addr_info?.some((a) => a.local === address && a.prefixlen === prefix)
  );
  if (!present) {
    // "replace" is idempotent where "add" fails on a concurrent twin.
    await step(`Cannot add address ${address}/${prefix} to "${name}"`, [
      "addr",
      "replace",
      `${address}/${prefix}`,
      "dev",
      name,
    ]);
  }

  await step(`Cannot bring bridge "${name}" up`, [
    "link",
    "set",
    name,
    "up",
  ]);
}

/**
 * Creates a tap owned by `owner` (so the unprivileged VMM can open it),
 * enslaves it to `bridge` and brings it up. An existing tap of that name is
 * replaced, since a stale one may belong to a dead VM.
 */
export async function createTap(
  name: string,
  bridge: string,
  owner: number,
): Promise<void> {
  if (await linkExists(name)) await deleteTap(name);

  await step(`Cannot create tap "${name}"`, [
    "tuntap",
    "add",
    "dev",
    name,
    "mode",
    "tap",
    "user",
    String(owner),
  ]);

  try {
    await step(`Cannot attach tap "${name}" to "${bridge}"`, [
      "link",
      "set",
      name,
      "master",
      bridge,
    ]);

    await step(`Cannot bring tap "${name}" up`, ["link", "set", name, "up"]);
  } catch (error) {
    // A tap that is not attached is useless and would block the next try.
    await deleteTap(name).catch(() => {});
    throw error;
  }
}

/** Deletes a tap; deleting one that does not exist succeeds. */
export async function deleteTap(name: string): Promise<void> {
  try {
    await run("ip", ["link", "del", "dev", name]);
  } catch (error) {
    if (error instanceof CommandError && !(await linkExists(name))) return;
    throw new NetworkStepError(`Cannot delete tap "${name}"`, error);
  }
}
