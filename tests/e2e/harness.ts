/**
 * What an end-to-end scenario gets: an isolated banger (its own BANGER_ROOT
 * and HOME) inside a network namespace made for it, a way to run the CLI,
 * and helpers to make throwaway git repositories.
 *
 * @module
 */
import { join } from "node:path";

/** The flags banger runs with: the union of its roles' permissions. */
export const BANGER_FLAGS = [
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

/**
 * Deno's module cache, pinned so that scenarios with their own HOME reuse
 * the packages fetched outside the namespace (which has no network).
 */
export const DENO_DIR = Deno.env.get("DENO_DIR") ??
  join(Deno.env.get("HOME") ?? "/root", ".cache/deno");

/**
 * The image build cache shared by the e2e suite, the benchmark, the
 * integration tests that boot the image's kernel and scripts/quickstart.sh
 * (the system install's cache path), so one build serves all.
 */
export const E2E_CACHE_DIR = Deno.env.get("BANGER_E2E_CACHE") ??
  "/var/cache/banger";

/**
 * A kernel built from Firecracker's guest configuration by
 * scripts/build-fc-kernel.sh (about 9 minutes on two idle cores, so not in CI).
 */
export const FC_GUEST_KERNEL = Deno.env.get("BANGER_FC_KERNEL") ??
  "/var/cache/banger-fc-kernel/vmlinux";

/** The repository's main.ts. */
export const MAIN_TS = new URL("../../main.ts", import.meta.url).pathname;

/** The output of one command. */
export interface Output {
  code: number;
  stdout: string;
  stderr: string;
}

/** Options for {@linkcode Scenario.banger}. */
export interface BangerOptions {
  cwd?: string;
  env?: Record<string, string>;
  stdin?: string;
  /** Fail unless the exit status is this (default: do not check). */
  expectCode?: number;
}

/** The environment a scenario runs in. */
export class Scenario {
  constructor(
    readonly name: string,
    readonly root: string,
    readonly home: string,
    readonly cacheDir: string,
    readonly log: (line: string) => void,
  ) {}

  /** Environment variables that select this scenario's banger instance. */
  get env(): Record<string, string> {
    return {
      BANGER_ROOT: this.root,
      HOME: this.home,
      BANGER_CACHE_DIR: this.cacheDir,
      NO_COLOR: "1",
      DENO_DIR: DENO_DIR,
    };
  }

  /** Runs `banger args…` and returns its output. */
  async banger(args: string[], options: BangerOptions = {}): Promise<Output> {
    this.log(`$ banger ${args.join(" ")}`);
    const result = await exec(Deno.execPath(), [
      ...BANGER_FLAGS,
      MAIN_TS,
      ...args,
    ], {
      env: { ...this.env, ...options.env },
      ...(options.cwd ? { cwd: options.cwd } : {}),
      ...(options.stdin !== undefined ? { stdin: options.stdin } : {}),
    });
    this.log(`  exit ${result.code}`);
    if (result.stdout.trim()) this.log(indent("stdout", result.stdout));
    if (result.stderr.trim()) this.log(indent("stderr", result.stderr));
    if (
      options.expectCode !== undefined && result.code !== options.expectCode
    ) {
      throw new Error(
        `"banger ${
          args.join(" ")
        }" exited ${result.code}, expected ${options.expectCode}:\n${result.stderr}`,
      );
    }
    return result;
  }

  /** Starts `banger args…` without waiting for it. */
  spawnBanger(args: string[]): Deno.ChildProcess {
    this.log(`$ banger ${args.join(" ")} &`);
    return new Deno.Command(Deno.execPath(), {
      args: [...BANGER_FLAGS, MAIN_TS, ...args],
      env: this.env,
      stdin: "null",
      stdout: "null",
      stderr: "null",
    }).spawn();
  }

  /** Runs a host program inside the scenario's namespace. */
  async sh(program: string, args: string[], cwd?: string): Promise<Output> {
    return await exec(program, args, {
      env: this.env,
      ...(cwd ? { cwd } : {}),
    });
  }

  /**
   * Makes a git repository with `files` committed, returns its path.
   */
  async gitRepo(name: string, files: Record<string, string>): Promise<string> {
    const dir = join(this.home, name);
    await Deno.mkdir(dir, { recursive: true });
    await this.git(dir, ["init", "-q", "-b", "main"]);
    for (const [path, text] of Object.entries(files)) {
      await Deno.mkdir(join(dir, path, ".."), { recursive: true });
      await Deno.writeTextFile(join(dir, path), text);
    }
    await this.git(dir, ["add", "-A"]);
    await this.git(dir, ["commit", "-q", "-m", "initial"]);
    return dir;
  }

  /** Runs git in `dir` with a fixed identity. */
  async git(dir: string, args: string[]): Promise<string> {
    const result = await exec("git", ["-C", dir, ...args], {
      env: {
        ...this.env,
        GIT_AUTHOR_NAME: "e2e",
        GIT_AUTHOR_EMAIL: "e2e@example.invalid",
        GIT_COMMITTER_NAME: "e2e",
        GIT_COMMITTER_EMAIL: "e2e@example.invalid",
      },
    });
    if (result.code !== 0) {
      throw new Error(`git ${args.join(" ")}: ${result.stderr}`);
    }
    return result.stdout;
  }

  /** The VMs banger lists, as JSON. */
  async vms(): Promise<
    { name: string; state: string; ip: string; tap: string; dir: string }[]
  > {
    const result = await this.banger(["vm", "list", "--json"], {
      expectCode: 0,
    });
    return JSON.parse(result.stdout);
  }

  /** Names of the network links in this namespace matching `prefix`. */
  async links(prefix: string): Promise<string[]> {
    const result = await exec("ip", ["-j", "link", "show"], {});
    return (JSON.parse(result.stdout) as { ifname: string }[])
      .map((l) => l.ifname).filter((n) => n.startsWith(prefix));
  }
}

/** Runs a program and collects its output. */
export async function exec(
  program: string,
  args: string[],
  options: { env?: Record<string, string>; cwd?: string; stdin?: string },
): Promise<Output> {
  const child = new Deno.Command(program, {
    args,
    ...(options.env ? { env: options.env } : {}),
    ...(options.cwd ? { cwd: options.cwd } : {}),
    stdin: options.stdin === undefined ? "null" : "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  if (options.stdin !== undefined) {
    const writer = child.stdin.getWriter();
    await writer.write(new TextEncoder().encode(options.stdin));
    await writer.close();
  }
  const out = await child.output();
  const decoder = new TextDecoder();
  return {
    code: out.code,
    stdout: decoder.decode(out.stdout),
    stderr: decoder.decode(out.stderr),
  };
}

function indent(label: string, text: string): string {
  return `  ${label}:\n` +
    text.trimEnd().split("\n").map((l) => `    ${l}`).join("\n");
}

/** Throws with `message` unless `condition` holds. */
export function check(condition: unknown, message: string): asserts condition {
  if (!condition) throw new Error(message);
}
