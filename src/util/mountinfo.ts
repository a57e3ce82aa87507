/**
 * Reading the mount table (`/proc/self/mountinfo`) to know what is mounted
 * inside a directory (a jail, an image build) before anything in it is
 * removed: a recursive delete must never walk into a mount.
 *
 * @module
 */
import { readProcFile } from "./procfs.ts";

/** One mount: where it is and whether it is read-only. */
export interface MountEntry {
  mountPoint: string;
  /** The root of the mount within its filesystem (for bind mounts). */
  root: string;
  readOnly: boolean;
}

/** Decodes mountinfo's octal escapes (`\040` for a space, …). */
function unescape(field: string): string {
  return field.replace(
    /\\([0-7]{3})/g,
    (_, octal: string) => String.fromCharCode(parseInt(octal, 8)),
  );
}

/** Parses the text of a mountinfo file. */
export function parseMountinfo(text: string): MountEntry[] {
  const entries: MountEntry[] = [];
  for (const line of text.split("\n")) {
    const fields = line.split(" ");
    if (fields.length < 6) continue;
    entries.push({
      root: unescape(fields[3]!),
      mountPoint: unescape(fields[4]!),
      readOnly: fields[5]!.split(",").includes("ro"),
    });
  }
  return entries;
}

/**
 * The calling process's mounts (read through cat, which shares its mount
 * namespace). Requires `--allow-run` for cat.
 */
export async function readMounts(): Promise<MountEntry[]> {
  return parseMountinfo(await readProcFile("/proc/self/mountinfo"));
}

/** Mounts at `dir` or below it, deepest first. */
export function mountsUnder(mounts: MountEntry[], dir: string): MountEntry[] {
  const prefix = dir.endsWith("/") ? dir : `${dir}/`;
  return mounts
    .filter((m) => m.mountPoint === dir || m.mountPoint.startsWith(prefix))
    .sort((a, b) => b.mountPoint.length - a.mountPoint.length);
}
