/**
 * Starting banger from tests the way the compiled binary starts: the main
 * thread with the union of all roles' permissions.
 *
 * @module
 */

/** deno flags equal to the compiled binary's permissions. */
export const UNION_FLAGS = [
  "run",
  "--unstable-worker-options",
  "--allow-read",
  "--allow-write",
  "--allow-run",
  "--allow-net",
  "--allow-env",
  "--allow-ffi",
  "--allow-sys",
];

export const MAIN_TS = new URL("../../main.ts", import.meta.url).pathname;

/** argv (program first) that runs `banger args…`. */
export function bangerArgv(args: string[]): string[] {
  return [Deno.execPath(), ...UNION_FLAGS, MAIN_TS, ...args];
}

/** Runs a program and returns its status and output. */
export async function runCommand(
  argv: string[],
  env: Record<string, string> = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  const out = await new Deno.Command(argv[0]!, {
    args: argv.slice(1),
    env,
    stdin: "null",
  }).output();
  const d = new TextDecoder();
  return {
    code: out.code,
    stdout: d.decode(out.stdout),
    stderr: d.decode(out.stderr),
  };
}

/** Polls until `path` exists (a socket being created). */
export async function waitForPath(
  path: string,
  timeoutMs = 15_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await Deno.stat(path).then(() => true, () => false)) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`${path} did not appear within ${timeoutMs} ms`);
}
