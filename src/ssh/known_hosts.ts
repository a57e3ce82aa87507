/**
 * Editing banger's own known_hosts (never the user's).
 *
 * @module
 */
import { KeyedMutex } from "../util/mutex.ts";

/**
 * Edits of one file run one at a time: each is read, filter, rename, and
 * two at once would each write back the line the other removed (a batch
 * delete removes several VMs' lines concurrently). ssh's own appends (first
 * contact with another VM) are not serialized with these; one that lands
 * between the read and the rename is lost, and that host key is pinned
 * again on its next contact.
 */
const edits = new KeyedMutex();

/**
 * Removes every line whose host field names one of `hosts` (exactly, or as
 * `[host]:port`). Writes through a temp file and rename. Returns how many
 * lines were removed; a missing file removes nothing.
 */
export function removeKnownHosts(
  path: string,
  hosts: readonly string[],
): Promise<number> {
  return edits.run(path, () => removeNow(path, hosts));
}

async function removeNow(
  path: string,
  hosts: readonly string[],
): Promise<number> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return 0;
    throw error;
  }
  const wanted = new Set(hosts);
  let removed = 0;
  const kept = text.split("\n").filter((line) => {
    const field = line.trim().split(/\s+/)[0] ?? "";
    const names = field.split(",").map((n) =>
      n.replace(/^\[(.*)\]:\d+$/, "$1")
    );
    if (names.some((n) => wanted.has(n))) {
      removed++;
      return false;
    }
    return true;
  });
  if (removed > 0) {
    const temp = `${path}.tmp-${crypto.randomUUID().slice(0, 8)}`;
    await Deno.writeTextFile(temp, kept.join("\n"), { mode: 0o600 });
    await Deno.rename(temp, path);
  }
  return removed;
}
