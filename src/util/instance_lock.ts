/**
 * One daemon (or helper) per BANGER_ROOT: an exclusive lock on a file held
 * for the process's lifetime. Two CLIs starting the daemon at the same time
 * would otherwise start two, and the second would take over the socket of
 * the first.
 *
 * @module
 */

/**
 * Takes the exclusive lock on `path`, waiting at most `timeoutMs`. Returns
 * the open file (keep it open: closing releases the lock) or undefined when
 * another process holds it.
 */
export async function acquireInstanceLock(
  path: string,
  timeoutMs = 1000,
): Promise<Deno.FsFile | undefined> {
  const file = await Deno.open(path, {
    create: true,
    write: true,
    mode: 0o600,
  });
  // Deno's lock() blocks with no way to cancel it; a holder that stays is a
  // live instance, and the loser exits without waiting for the call.
  const locked = await Promise.race([
    file.lock(true).then(() => true),
    new Promise<false>((r) => setTimeout(() => r(false), timeoutMs)),
  ]);
  return locked ? file : undefined;
}
