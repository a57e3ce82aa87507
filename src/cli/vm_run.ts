/**
 * `banger vm run [path] [-- cmd args…]`: boot a fresh VM, copy the
 * repository in, run the command (or open a shell) and exit with its status.
 *
 * @module
 */
import { dirname, resolve } from "node:path";
import type { Config } from "../config.ts";
import {
  CREATE_STAGES,
  VmCreateResultSchema,
  type VmInfo,
} from "../protocol/daemon.ts";
import { BatchResultSchema } from "../protocol/daemon.ts";
import { shellJoin } from "../ssh/quote.ts";
import { sshArgs, type SshIdentity } from "../ssh/options.ts";
import { formatMiB, parseDiskMiB, parseMemoryMiB } from "../util/size.ts";
import { validateVmName } from "../util/names.ts";
import { copyWorkspace, GUEST_REPO_PATH } from "../workspace/copy.ts";
import {
  type FileList,
  inspectRepo,
  listWorkspaceFiles,
  type Repo,
} from "../workspace/git.ts";
import type { DaemonClient } from "./daemon_client.ts";
import { note, out, Progress } from "./output.ts";
import { withActivity } from "./activity.ts";
import { chooseKernel, parseVcpu, withKernelSource } from "./vm_commands.ts";

/** Flags of `vm run` as commander hands them over. */
export interface VmRunFlags {
  name?: string;
  image?: string;
  kernel?: string;
  vcpu?: string;
  memory?: string;
  diskSize?: string;
  rm?: boolean;
  nat?: boolean;
  includeUntracked?: boolean;
  dryRun?: boolean;
  timings?: string;
}

/**
 * The stages `vm run --timings` reports, in order: the create's, then the
 * run's own.
 */
export const VM_RUN_STAGES = [
  ...CREATE_STAGES,
  "workspace",
  "command",
  "teardown",
] as const;
type VmRunStage = typeof VM_RUN_STAGES[number];

/** A validated `vm run` request: nothing is created before this exists. */
export interface VmRunPlan {
  name: string | undefined;
  image: string;
  kernel: string | undefined;
  /** The kernel is default_kernel from config.toml, not --kernel. */
  kernelFromConfig: boolean;
  vcpu: number;
  memoryMib: number;
  diskMib: number;
  rm: boolean;
  /** Opt-in NAT: the guest may reach beyond the host. */
  nat: boolean;
  repo: Repo | undefined;
  files: FileList | undefined;
  command: string[] | undefined;
}

/**
 * Validates every flag and the path before anything is created. Throws an
 * error that names the bad input.
 */
export async function planVmRun(
  path: string | undefined,
  command: string[] | undefined,
  flags: VmRunFlags,
  config: Config,
): Promise<VmRunPlan> {
  const name = flags.name === undefined
    ? undefined
    : validateVmName(flags.name);
  const vcpu = flags.vcpu === undefined
    ? config.vmDefaults.vcpu.value
    : parseVcpu(flags.vcpu);
  const memoryMib = flags.memory === undefined
    ? config.vmDefaults.memoryMib.value
    : parseMemoryMiB(flags.memory);
  const diskMib = flags.diskSize === undefined
    ? config.vmDefaults.diskMib.value
    : parseDiskMiB(flags.diskSize);
  if (command !== undefined && command.length === 0) {
    throw new RangeError('Invalid command: nothing follows "--"');
  }
  const { kernel, fromConfig: kernelFromConfig } = chooseKernel(
    flags.kernel,
    config,
  );
  if (flags.timings !== undefined) await checkOutputFile(flags.timings);
  const repo = path === undefined ? undefined : await inspectRepo(path);
  const files = repo
    ? await listWorkspaceFiles(repo, flags.includeUntracked ?? false)
    : undefined;
  // The command runs in the path's place in the copy, which exists only if
  // something under it is copied.
  if (repo && files && repo.relative !== "") {
    const under = `${repo.relative}/`;
    if (!files.files.some((f) => f.startsWith(under))) {
      throw new RangeError(
        `Cannot use "${path}" as a workspace: nothing under it would be copied (no ${
          flags.includeUntracked ? "" : "tracked "
        }files${
          flags.includeUntracked ? " that git does not ignore" : ""
        }), so the command would have no directory to run in`,
      );
    }
  }
  return {
    name,
    image: flags.image ?? config.defaultImage,
    kernel,
    kernelFromConfig,
    vcpu,
    memoryMib,
    diskMib,
    rm: flags.rm ?? false,
    nat: flags.nat ?? false,
    repo,
    files,
    command,
  };
}

/**
 * Refuses a `--timings` file that cannot be written at the end: its
 * directory must exist and it must not be a directory itself. Nothing is
 * created here, so a run refused later leaves no file behind.
 */
async function checkOutputFile(path: string): Promise<void> {
  const what = `Invalid --timings "${path}"`;
  const parent = await Deno.stat(dirname(resolve(path))).catch(() => null);
  if (!parent?.isDirectory) {
    throw new RangeError(`${what}: its directory does not exist`);
  }
  const existing = await Deno.stat(path).catch(() => null);
  if (existing?.isDirectory) {
    throw new RangeError(`${what}: is a directory`);
  }
}

/** Runs a plan; returns the exit status banger should exit with. */
export async function executeVmRun(
  plan: VmRunPlan,
  daemon: DaemonClient,
  ssh: SshIdentity,
  options: { dryRun: boolean; timingsFile?: string | undefined },
): Promise<number> {
  if (options.dryRun) {
    if (plan.files) {
      for (const file of plan.files.files) out(`${file}\n`);
    }
    note(
      `dry run: would create a VM (${plan.vcpu} vcpu, ${plan.memoryMib} MiB, ${
        formatMiB(plan.diskMib)
      } disk)${
        plan.files
          ? ` and copy the ${plan.files.files.length} file${
            plan.files.files.length === 1 ? "" : "s"
          } listed, plus .git (the history)`
          : ""
      }`,
    );
    return 0;
  }
  note(
    `spec: ${plan.vcpu} vcpu | ${plan.memoryMib} MiB | ${
      formatMiB(plan.diskMib)
    } disk`,
  );
  if (plan.files && plan.files.skippedUntracked > 0) {
    note(
      `skipping ${plan.files.skippedUntracked} untracked file(s); pass --include-untracked to copy them`,
    );
  }

  let interrupted: Interrupt | undefined;
  // Ctrl-C on a terminal reaches ssh too (same process group); a signal
  // sent to banger alone is passed on to the running ssh, so that --rm
  // cleanup runs either way.
  const onInterrupt = (signal: Interrupt) => {
    interrupted = signal;
    try {
      running?.kill("SIGTERM");
    } catch {
      // ssh already exited.
    }
  };
  const listeners = INTERRUPTS.map((signal) => {
    const listener = () => onInterrupt(signal);
    Deno.addSignalListener(signal, listener);
    return { signal, listener };
  });
  const progress = new Progress();
  let vm: VmInfo | undefined;
  const timings: Record<string, number> = {};
  const started = performance.now();
  let mark = started;
  const lap = (stage: VmRunStage) => {
    const now = performance.now();
    timings[stage] = Math.round(now - mark);
    mark = now;
  };
  try {
    const created = await withKernelSource(
      daemon.call(
        "vm.create",
        {
          ...(plan.name ? { name: plan.name } : {}),
          image: plan.image,
          ...(plan.kernel ? { kernel: plan.kernel } : {}),
          vcpu: plan.vcpu,
          memoryMib: plan.memoryMib,
          diskMib: plan.diskMib,
          ...(plan.repo ? { workspace: GUEST_REPO_PATH } : {}),
          ...(plan.nat ? { nat: true } : {}),
        },
        VmCreateResultSchema,
        { onProgress: (p) => progress.update(p.stage, p.detail) },
      ),
      plan.kernelFromConfig,
    );
    vm = created.vm;
    Object.assign(timings, created.timings);
    mark = performance.now();
    if (interrupted) return interruptedStatus(interrupted, plan, vm);

    const target = { name: vm.name, ip: vm.ip };
    const sshBase = sshArgs(ssh, target);
    if (plan.repo && plan.files) {
      const count = plan.files.files.length;
      progress.update("workspace", `${count} file${count === 1 ? "" : "s"}`);
      await copyWorkspace(plan.repo, plan.files, {
        program: "ssh",
        args: sshBase,
      });
    }
    lap("workspace");
    progress.done(`${vm.name} ready`);
    if (interrupted) return interruptedStatus(interrupted, plan, vm);

    const cwd = plan.repo
      ? [GUEST_REPO_PATH, plan.repo.relative].filter((p) => p).join("/")
      : "/root";
    if (plan.command) {
      const remote = `cd ${shellJoin([cwd])} && exec ${
        shellJoin(plan.command)
      }`;
      const tty = Deno.stdin.isTerminal() && Deno.stdout.isTerminal();
      const code = await withActivity(daemon, vm.id, () =>
        runSsh([
          ...sshArgs(ssh, { ...target, tty }),
          remote,
        ]));
      lap("command");
      // ssh ended by the signal says 255; the shell convention says which
      // signal it was.
      return interrupted ? interruptedStatus(interrupted, plan, vm) : code;
    }
    const code = await withActivity(daemon, vm.id, () =>
      runSsh([
        ...sshArgs(ssh, { ...target, tty: true }),
        `cd ${shellJoin([cwd])} && exec bash -l`,
      ]));
    if (!plan.rm) {
      note(
        `VM "${vm.name}" is still running; delete it with "banger vm delete ${vm.name}"`,
      );
    }
    return code;
  } finally {
    progress.stop();
    mark = performance.now();
    if (plan.rm && vm) {
      const results = await daemon.call(
        "vm.delete",
        { refs: [vm.name] },
        BatchResultSchema,
      );
      const failed = results.find((r) => !r.ok);
      if (failed) note(`banger: ${failed.error?.message ?? "delete failed"}`);
    }
    if (plan.rm && vm) lap("teardown");
    timings.total = Math.round(performance.now() - started);
    if (options.timingsFile) {
      // Checked up front, but a failure here must not hide the guest
      // command's status.
      await Deno.writeTextFile(
        options.timingsFile,
        JSON.stringify(timings) + "\n",
      ).catch((error) =>
        note(
          `banger: Cannot write --timings file "${options.timingsFile}": ${
            (error as Error).message
          }`,
        )
      );
    }
    for (const { signal, listener } of listeners) {
      Deno.removeSignalListener(signal, listener);
    }
  }
}

/** Signals that end a run early, still deleting an --rm VM. */
const INTERRUPTS = ["SIGINT", "SIGTERM", "SIGHUP"] as const;
type Interrupt = typeof INTERRUPTS[number];

/** Signal numbers, for the shell's 128 + n exit status. */
const SIGNAL_NUMBERS: Record<Interrupt, number> = {
  SIGHUP: 1,
  SIGINT: 2,
  SIGTERM: 15,
};

/** Says what an interrupted run did, and returns the status to exit with. */
function interruptedStatus(
  signal: Interrupt,
  plan: VmRunPlan,
  vm: VmInfo | undefined,
): number {
  note(
    `banger: interrupted by ${signal}${
      vm && plan.rm ? `; deleting VM "${vm.name}"` : ""
    }`,
  );
  return 128 + SIGNAL_NUMBERS[signal];
}

/** The ssh session in progress, for the interrupt handler. */
let running: Deno.ChildProcess | undefined;

/** Runs ssh with the terminal attached; returns its exit status. */
async function runSsh(args: string[]): Promise<number> {
  const child = running = new Deno.Command("ssh", {
    args,
    stdin: "inherit",
    stdout: "inherit",
    stderr: "inherit",
  }).spawn();
  try {
    return (await child.status).code;
  } finally {
    running = undefined;
  }
}
