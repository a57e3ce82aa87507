/**
 * The VM lifecycle commands: create, start, stop, restart, kill, prune,
 * stats and set, plus the helpers the older commands share (batch
 * reporting, flag parsing). Commands that take several VMs send them in
 * one request; the daemon resolves, de-duplicates and runs them
 * concurrently and answers in the order given.
 *
 * @module
 */
import type { Command } from "commander";
import Table from "cli-table3";
import type { Config } from "../config.ts";
import {
  type BatchResult,
  BatchResultSchema,
  KILL_SIGNALS,
  VmCreateResultSchema,
  VmInfoSchema,
  VmListResultSchema,
  VmStatsSchema,
} from "../protocol/daemon.ts";
import { formatMiB, parseDiskMiB, parseMemoryMiB } from "../util/size.ts";
import { validateVmName } from "../util/names.ts";
import { validateKernelName } from "../protocol/kernel.ts";
import { RpcError } from "../protocol/envelope.ts";
import type { DaemonClient } from "./daemon_client.ts";
import { note, out, printError, Progress } from "./output.ts";

/** How idle VMs are stopped, for the help of commands that start VMs. */
export const IDLE_HELP =
  "\nIdle VMs: with auto_stop_stale_after = <seconds> in config.toml, the daemon\n" +
  "stops a running VM after that long without banger activity on it (a start,\n" +
  "or an open vm ssh / vm run session, which reports every 5 s). A plain\n" +
  "`ssh name.vm` outside banger does not count. Values below 15 act as 15;\n" +
  "0 (the default) never stops.\n";

/** Largest vcpu count banger accepts. */
const MAX_VCPU = 64;

/** What the lifecycle commands need from the CLI's composition. */
export interface VmCommandDeps {
  daemon: DaemonClient;
  config: Config;
  /** Records the process exit status. */
  setStatus(code: number): void;
}

/**
 * Prints one line per target, in the order given: `name: done` on stdout,
 * errors as `banger: …` on stderr. Returns 1 when any target failed.
 */
export function reportBatch(results: BatchResult, done: string): number {
  let status = 0;
  for (const r of results) {
    if (r.ok) out(`${r.ref}: ${r.detail ?? done}\n`);
    else {
      printError(r.error?.message ?? `Cannot ${done} "${r.ref}"`);
      status = 1;
    }
  }
  return status;
}

/** The kernel a new VM boots, and whether config.toml chose it. */
export interface KernelChoice {
  kernel: string | undefined;
  /** The kernel is default_kernel from config.toml, not --kernel. */
  fromConfig: boolean;
}

/**
 * `--kernel` when given (checked as a kernel name), else `default_kernel`
 * from config.toml, else none (the image's own).
 */
export function chooseKernel(
  flag: string | undefined,
  config: Config,
): KernelChoice {
  return flag === undefined
    ? {
      kernel: config.defaultKernel,
      fromConfig: config.defaultKernel !== undefined,
    }
    : { kernel: validateKernelName(flag, "--kernel"), fromConfig: false };
}

/**
 * Awaits a create call; when its kernel came from `default_kernel` rather
 * than `--kernel`, a "kernel not found" answer says so.
 */
export async function withKernelSource<T>(
  call: Promise<T>,
  fromConfig: boolean,
): Promise<T> {
  try {
    return await call;
  } catch (error) {
    if (
      fromConfig && error instanceof RpcError && error.code === "not_found" &&
      error.message.startsWith("Cannot find kernel")
    ) {
      throw new RpcError(
        error.code,
        `${error.message}; it is default_kernel in config.toml`,
        error.op,
      );
    }
    throw error;
  }
}

/** Parses a vcpu flag: a whole number from 1 to 64. */
export function parseVcpu(text: string, flag = "--vcpu"): number {
  if (!/^\d+$/.test(text) || Number(text) < 1 || Number(text) > MAX_VCPU) {
    throw new RangeError(
      `Invalid ${flag} "${text}": must be a whole number from 1 to ${MAX_VCPU}`,
    );
  }
  return Number(text);
}

/** Normalizes a `--signal` value (`KILL`, `sigterm`, `9`, `15`). */
export function parseSignal(text: string): typeof KILL_SIGNALS[number] {
  const numbers: Record<string, string> = {
    "1": "HUP",
    "2": "INT",
    "3": "QUIT",
    "9": "KILL",
    "15": "TERM",
  };
  const name = (numbers[text] ?? text).toUpperCase().replace(/^SIG/, "");
  const known = KILL_SIGNALS.find((s) => s === name);
  if (!known) {
    throw new RangeError(
      `Invalid --signal "${text}": must be one of ${KILL_SIGNALS.join(", ")}`,
    );
  }
  return known;
}

/**
 * The options that describe a new VM, shared by `vm run` and `vm create`:
 * name, image, kernel, sizes (with the host-aware defaults and where each
 * came from) and NAT.
 */
export function addVmSpecOptions(command: Command, config: Config): Command {
  const d = config.vmDefaults;
  return command
    .option(
      "--name <name>",
      "VM name, a DNS label: 1-63 of a-z, 0-9, - (default: generated, e.g. calm-otter)",
    )
    .option("--image <image>", "image to boot", config.defaultImage)
    .option(
      "--kernel <name>",
      `boot an imported kernel instead of the image's (see banger kernel import)${
        config.defaultKernel
          ? ` (default: ${config.defaultKernel}, from default_kernel in config)`
          : ""
      }`,
    )
    .option(
      "--vcpu <n>",
      `virtual CPUs (default: ${d.vcpu.value}, from ${d.vcpu.from})`,
    )
    .option(
      "--memory <size>",
      `memory: 512M, 4G, 4GiB, 512MiB; bare = MiB (default: ${d.memoryMib.value} MiB, from ${d.memoryMib.from})`,
    )
    .option(
      "--disk-size <size>",
      `size of the /root work disk (default: ${
        formatMiB(d.diskMib.value)
      }, from ${d.diskMib.from})`,
    )
    .option(
      "--nat",
      "let the guest reach beyond the host (masquerade for its address only)",
    );
}

/** Registers the lifecycle commands under `vm`. */
export function addVmLifecycleCommands(vm: Command, deps: VmCommandDeps): void {
  const { daemon, config } = deps;

  const create = vm.command("create")
    .description(
      "Create a VM and boot it (or, with --no-start, only make its disks).\n" +
        "Prints the VM's name; use it with vm ssh, vm stop, vm delete.",
    );
  addVmSpecOptions(create, config)
    .option("--no-start", "create the disks but do not boot")
    .option("--json", "print the VM as JSON")
    .addHelpText(
      "after",
      "\nExamples:\n  banger vm create --name api --memory 4G\n  banger vm create --no-start && banger vm start <name>\n" +
        IDLE_HELP,
    )
    .action(async (flags: {
      name?: string;
      image?: string;
      kernel?: string;
      vcpu?: string;
      memory?: string;
      diskSize?: string;
      nat?: boolean;
      start: boolean;
      json?: boolean;
    }) => {
      // Everything is checked before the daemon is asked for anything.
      const { kernel, fromConfig } = chooseKernel(flags.kernel, config);
      const params = {
        ...(flags.name !== undefined
          ? { name: validateVmName(flags.name) }
          : {}),
        ...(flags.image !== undefined ? { image: flags.image } : {}),
        ...(kernel !== undefined ? { kernel } : {}),
        ...(flags.vcpu !== undefined ? { vcpu: parseVcpu(flags.vcpu) } : {}),
        ...(flags.memory !== undefined
          ? { memoryMib: parseMemoryMiB(flags.memory) }
          : {}),
        ...(flags.diskSize !== undefined
          ? { diskMib: parseDiskMiB(flags.diskSize) }
          : {}),
        ...(flags.nat ? { nat: true } : {}),
        start: flags.start,
      };
      const progress = new Progress(flags.json ?? false);
      try {
        const created = await withKernelSource(
          daemon.call(
            "vm.create",
            params,
            VmCreateResultSchema,
            { onProgress: (p) => progress.update(p.stage, p.detail) },
          ),
          fromConfig,
        );
        const v = created.vm;
        progress.done(
          `${v.name} ${flags.start ? "ready" : "created (stopped)"}`,
        );
        if (flags.json) out(JSON.stringify(v, null, 2) + "\n");
        else {
          out(`${v.name}\n`);
          note(
            `spec: ${v.vcpu} vcpu | ${v.memoryMib} MiB | ${
              formatMiB(v.diskMib)
            } disk | ${v.ip}`,
          );
        }
      } finally {
        progress.stop();
      }
    });

  const batch = (
    name: string,
    method: string,
    done: string,
    description: string,
  ) =>
    vm.command(name)
      .description(description)
      .argument("<vm...>", "VM names or ids")
      .action(async (refs: string[]) => {
        const results = await daemon.call(
          method,
          { refs },
          BatchResultSchema,
        );
        deps.setStatus(reportBatch(results, done));
      });

  batch(
    "start",
    "vm.start",
    "started",
    "Boot stopped VMs (their disks and /root data are kept).",
  ).addHelpText("after", IDLE_HELP);
  batch(
    "stop",
    "vm.stop",
    "stopped",
    "Stop VMs cleanly: the guest syncs and powers off over ssh (2 s connect\n" +
      "timeout), then the VMM is ended if needed and the tap removed. Data\n" +
      "under /root survives; start them again with vm start.",
  );
  batch(
    "restart",
    "vm.restart",
    "restarted",
    "Stop VMs cleanly and boot them again (a real reboot: new boot id).",
  );

  vm.command("kill")
    .description(
      "End VMs' VMM processes without asking the guest (default SIGKILL);\n" +
        "they end stopped, with their tap and sockets cleaned up.",
    )
    .argument("<vm...>", "VM names or ids")
    .option(
      "-s, --signal <signal>",
      `signal to send: ${KILL_SIGNALS.join(", ")} (default KILL)`,
    )
    .action(async (refs: string[], flags: { signal?: string }) => {
      const signal = flags.signal === undefined
        ? "KILL"
        : parseSignal(flags.signal);
      const results = await daemon.call(
        "vm.kill",
        { refs, signal },
        BatchResultSchema,
      );
      deps.setStatus(reportBatch(results, "killed"));
    });

  vm.command("prune")
    .description(
      "Delete every VM that is not running (stopped or failed), after\n" +
        "confirmation unless -f.",
    )
    .option("-f, --force", "do not ask for confirmation")
    .action(async (flags: { force?: boolean }) => {
      const vms = await daemon.call("vm.list", {}, VmListResultSchema);
      const doomed = vms.filter((v) =>
        v.state !== "running" && v.state !== "creating"
      );
      if (doomed.length === 0) {
        note("banger: no VM to prune");
        return;
      }
      const names = doomed.map((v) => v.name);
      if (!flags.force) {
        if (!Deno.stdin.isTerminal()) {
          throw new Error(
            `Cannot prune ${names.length} VM(s) without confirmation: input is not a terminal; pass -f to delete ${
              names.join(", ")
            }`,
          );
        }
        if (!(await confirm(`Delete ${names.join(", ")}? [y/N] `))) {
          note("banger: nothing deleted");
          return;
        }
      }
      const results = await daemon.call(
        "vm.prune",
        { refs: doomed.map((v) => v.id) },
        BatchResultSchema,
      );
      deps.setStatus(
        reportBatch(
          results.map((r, i) => ({ ...r, ref: names[i] ?? r.ref })),
          "deleted",
        ),
      );
    });

  vm.command("stats")
    .description(
      "Host-side usage of VMs: CPU (percent of one core over the VMM's life)\n" +
        "and resident memory of the VMM, and the disk space its files use.",
    )
    .argument("<vm...>", "VM names or ids")
    .option("--json", "print JSON")
    .action(async (refs: string[], flags: { json?: boolean }) => {
      // Like the batch commands: each VM once, asked at the same time,
      // reported in the order given; an unknown one does not hide the rest.
      const unique = [...new Set(refs)];
      const answers = await Promise.allSettled(
        unique.map((ref) => daemon.call("vm.stats", { ref }, VmStatsSchema)),
      );
      const stats = [];
      for (const answer of answers) {
        if (answer.status === "fulfilled") stats.push(answer.value);
        else {
          printError((answer.reason as Error).message);
          deps.setStatus(1);
        }
      }
      if (flags.json) {
        out(JSON.stringify(stats, null, 2) + "\n");
        return;
      }
      const table = new Table({
        head: ["NAME", "STATE", "PID", "CPU", "RSS", "DISK USED", "UPTIME"],
        style: { head: [], border: [] },
        chars: PLAIN_TABLE,
      });
      for (const s of stats) {
        table.push([
          s.name,
          s.state,
          s.pid === null ? "-" : String(s.pid),
          s.cpuPercent === null ? "-" : `${s.cpuPercent.toFixed(1)}%`,
          s.rssMib === null ? "-" : `${s.rssMib} MiB`,
          `${s.diskUsedMib} MiB`,
          s.uptimeSeconds === null ? "-" : `${s.uptimeSeconds}s`,
        ]);
      }
      out(
        table.toString().split("\n").map((l) => l.trimEnd()).join("\n") + "\n",
      );
    });

  vm.command("set")
    .description("Change a stopped VM's vcpu count or memory.")
    .argument("<vm>", "VM name or id")
    .option("--vcpu <n>", "virtual CPUs, 1-64")
    .option("--memory <size>", "memory: 512M, 4G, 4GiB, 512MiB; bare = MiB")
    .action(async (ref: string, flags: { vcpu?: string; memory?: string }) => {
      if (flags.vcpu === undefined && flags.memory === undefined) {
        throw new RangeError(
          `Cannot change VM "${ref}": nothing to change (give --vcpu or --memory)`,
        );
      }
      const info = await daemon.call("vm.set", {
        ref,
        ...(flags.vcpu !== undefined ? { vcpu: parseVcpu(flags.vcpu) } : {}),
        ...(flags.memory !== undefined
          ? { memoryMib: parseMemoryMiB(flags.memory) }
          : {}),
      }, VmInfoSchema);
      out(`${info.name}: ${info.vcpu} vcpu, ${info.memoryMib} MiB\n`);
    });
}

/** Asks a yes/no question on the terminal; only "y"/"yes" says yes. */
async function confirm(question: string): Promise<boolean> {
  Deno.stderr.writeSync(new TextEncoder().encode(question));
  const buffer = new Uint8Array(256);
  const n = await Deno.stdin.read(buffer);
  const answer = new TextDecoder().decode(buffer.subarray(0, n ?? 0)).trim()
    .toLowerCase();
  return answer === "y" || answer === "yes";
}

/** Borderless table characters, as `vm list` uses. */
export const PLAIN_TABLE = {
  "top": "",
  "top-mid": "",
  "top-left": "",
  "top-right": "",
  "bottom": "",
  "bottom-mid": "",
  "bottom-left": "",
  "bottom-right": "",
  "left": "",
  "left-mid": "",
  "mid": "",
  "mid-mid": "",
  "right": "",
  "right-mid": "",
  "middle": "  ",
};
