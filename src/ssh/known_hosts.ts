/**
 * Editing banger's own known_hosts (never the user's).
 *
 * @module
 */

/**
 * Removes every line whose host field names one of `hosts` (exactly, or as
 * `[host]:port`). Writes through a temp file and rename. Returns how many
 * lines were removed; a missing file removes nothing.
 */
export async function removeKnownHosts(
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
