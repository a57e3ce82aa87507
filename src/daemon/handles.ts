/**
 * A VM's durable handles: what the daemon needs to find and clean up a
 * VM's host resources (VMM process, control socket, tap) after a crash.
 * The file sits in the VM's directory and is written (temp file + rename)
 * before the daemon's memory or database says anything new, so a daemon
 * killed at any moment leaves a way back to everything it made. The
 * database keeps a mirror, so a corrupt or missing file blocks nothing.
 *
 * @module
 */
import { join } from "node:path";
import { z } from "zod";
import { VM_FILES } from "./disks.ts";

/** The handles of a VM that holds (or may hold) host resources. */
export const HandlesSchema = z.strictObject({
  vmm: z.string(),
  /** The VMM's pid; 0 while the VMM is not launched yet. */
  pid: z.number().int().min(0),
  controlSocket: z.string(),
  tap: z.string(),
  ip: z.string(),
});
export type Handles = z.infer<typeof HandlesSchema>;

/** Writes `handles` to the VM directory `dir` atomically. */
export async function writeHandles(
  dir: string,
  handles: Handles,
): Promise<void> {
  const path = join(dir, VM_FILES.handles);
  const temp = `${path}.tmp`;
  await Deno.writeTextFile(temp, JSON.stringify(handles) + "\n", {
    mode: 0o600,
  });
  await Deno.rename(temp, path);
}

/**
 * Reads the handles file of `dir`. Throws when it is missing or does not
 * parse; callers fall back to the database's mirror.
 */
export async function readHandles(dir: string): Promise<Handles> {
  const text = await Deno.readTextFile(join(dir, VM_FILES.handles));
  return parseHandles(text);
}

/** Parses handles text (the file or the database mirror); throws if bad. */
export function parseHandles(text: string): Handles {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    throw new Error("handles are not valid JSON");
  }
  const parsed = HandlesSchema.safeParse(raw);
  if (!parsed.success) throw new Error("handles do not have the right shape");
  return parsed.data;
}

/** Removes the handles file of `dir`; a missing one is no error. */
export async function removeHandles(dir: string): Promise<void> {
  await Deno.remove(join(dir, VM_FILES.handles)).catch((error) => {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  });
}
