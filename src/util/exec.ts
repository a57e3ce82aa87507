/**
 * Running programs with argv only (never a shell string), with failures that
 * name the program, its exit status and what it printed.
 *
 * @module
 */

/** A program exited unsuccessfully or could not be started. */
export class CommandError extends Error {
  constructor(
    readonly program: string,
    readonly args: readonly string[],
    readonly code: number | null,
    readonly stderr: string,
    options?: ErrorOptions,
  ) {
    const detail = stderr.trim().split("\n").slice(-6).join("\n");
    super(
      code === null
        ? `Cannot run "${program}": ${
          options?.cause instanceof Error ? options.cause.message : "not found"
        }`
        : `Command "${program} ${args.slice(0, 4).join(" ")}${
          args.length > 4 ? " …" : ""
        }" failed with exit status ${code}${detail ? `: ${detail}` : ""}`,
      options,
    );
    this.name = "CommandError";
  }
}

/** Options for {@linkcode run}. */
export interface RunOptions {
  cwd?: string;
  env?: Record<string, string>;
  stdin?: Uint8Array | string;
  signal?: AbortSignal;
  /** Exit statuses that count as success (default: only 0). */
  okCodes?: readonly number[];
}

/** The captured result of a finished program. */
export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
  stdoutBytes: Uint8Array;
}

/**
 * Runs `program` with `args`, waits for it and returns its output.
 *
 * Requires `--allow-run` for `program`. Throws {@linkcode CommandError} when
 * it cannot start or exits with a status not in `okCodes`.
 */
export async function run(
  program: string,
  args: readonly string[],
  options: RunOptions = {},
): Promise<RunResult> {
  const command = new Deno.Command(program, {
    args: [...args],
    stdin: options.stdin === undefined ? "null" : "piped",
    stdout: "piped",
    stderr: "piped",
    ...(options.cwd ? { cwd: options.cwd } : {}),
    ...(options.env ? { env: options.env } : {}),
    ...(options.signal ? { signal: options.signal } : {}),
  });
  let child: Deno.ChildProcess;
  try {
    child = command.spawn();
  } catch (error) {
    throw new CommandError(program, args, null, "", { cause: error });
  }
  // Output is collected while input is written: a program that fills its
  // stdout pipe before reading all of stdin would otherwise deadlock.
  const output = child.output();
  if (options.stdin !== undefined) {
    const writer = child.stdin.getWriter();
    const data = typeof options.stdin === "string"
      ? new TextEncoder().encode(options.stdin)
      : options.stdin;
    try {
      await writer.write(data);
      await writer.close();
    } catch {
      // The program may exit without reading its input; its status decides.
    }
  }
  const out = await output;
  const decoder = new TextDecoder();
  const result: RunResult = {
    code: out.code,
    stdout: decoder.decode(out.stdout),
    stderr: decoder.decode(out.stderr),
    stdoutBytes: out.stdout,
  };
  const ok = options.okCodes ?? [0];
  if (!ok.includes(out.code)) {
    throw new CommandError(program, args, out.code, result.stderr);
  }
  return result;
}

/** Looks `program` up on `PATH`; returns its absolute path or undefined. */
export function which(
  program: string,
  path = Deno.env.get("PATH") ?? "",
): string | undefined {
  if (program.includes("/")) return isExecutable(program) ? program : undefined;
  for (const dir of path.split(":")) {
    if (!dir) continue;
    const candidate = `${dir}/${program}`;
    if (isExecutable(candidate)) return candidate;
  }
  return undefined;
}

function isExecutable(path: string): boolean {
  try {
    const info = Deno.statSync(path);
    return info.isFile && ((info.mode ?? 0) & 0o111) !== 0;
  } catch {
    return false;
  }
}
