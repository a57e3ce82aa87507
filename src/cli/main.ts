/**
 * The CLI: parses commands with commander and talks to the daemon. Errors
 * are turned into sentences for people here, and only here.
 *
 * @module
 */
import { Command, CommanderError } from "commander";
import Table from "cli-table3";
import {
  type Config,
  loadConfig,
  parseConfig,
  readHostFacts,
} from "../config.ts";
import { resolvePaths } from "../paths.ts";
import {
  BatchResultSchema,
  ImageInfoSchema,
  ImageListResultSchema,
  VmInfoSchema,
  VmListResultSchema,
} from "../protocol/daemon.ts";
import { RpcError } from "../protocol/envelope.ts";
import type { Launcher } from "../roles.ts";
import { sshArgs } from "../ssh/options.ts";
import { shellJoin } from "../ssh/quote.ts";
import { controlPath } from "../ssh/control.ts";
import { VERSION } from "../version.ts";
import { DaemonClient, isSystemInstall } from "./daemon_client.ts";
import { note, out, printError, Progress } from "./output.ts";
import { executeVmRun, planVmRun, type VmRunFlags } from "./vm_run.ts";
import { probePermissions } from "../util/probe.ts";
import {
  addVmLifecycleCommands,
  addVmSpecOptions,
  reportBatch,
} from "./vm_commands.ts";
import { withActivity } from "./activity.ts";
import {
  installSshConfig,
  renderSshConfig,
  uninstallSshConfig,
} from "./ssh_config.ts";
import { sshProxy } from "./ssh_proxy.ts";
import { formatPorts, vmPorts } from "./vm_ports.ts";
import { addKernelCommands } from "./kernel.ts";
import { tidyHelp } from "./help.ts";
import { call } from "../rpc/client.ts";
import { z } from "zod";

/** Runs the CLI with `argv` (without the program name); returns the status. */
export async function cliMain(
  argv: string[],
  launcher: Launcher,
): Promise<number> {
  // Everything after the first "--" belongs to the guest command or to ssh,
  // never to banger's own parser.
  const split = argv.indexOf("--");
  const own = split >= 0 ? argv.slice(0, split) : argv;
  const passthrough = split >= 0 ? argv.slice(split + 1) : undefined;

  const paths = resolvePaths();
  let status = 0;
  const daemon = new DaemonClient(paths);
  // A broken config.toml refuses every command but `daemon stop`, so that
  // a daemon started before the edit can still be stopped; help shows the
  // built-in defaults meanwhile.
  let config: Config;
  let configError: unknown;
  try {
    config = await loadConfig(paths.configFile);
  } catch (error) {
    configError = error;
    config = parseConfig("", readHostFacts());
  }
  const ssh = {
    key: config.sshKeyPath ?? paths.sshKey,
    knownHosts: paths.knownHosts,
    // Sessions ride the VM's shared connection when the daemon left one.
    controlFor: (ip: string) =>
      controlPath(paths.vmmSocketDir, config.cidr, ip),
  };

  const program = new Command("banger")
    .description(
      "One-command development sandboxes on microVMs.\n\n" +
        "  banger vm run ./repo -- make test  run it in a fresh VM, exit with its status\n" +
        "  banger vm run ./repo               same, then a shell in /root/repo\n" +
        "  banger vm list                     what is running",
    )
    .version(VERSION, "-V, --version", "print the version")
    .exitOverride()
    .configureOutput({
      writeOut: (s) => out(s),
      writeErr: (s) => Deno.stderr.writeSync(new TextEncoder().encode(s)),
      outputError: (s) => printError(s.replace(/^error: /, "").trim()),
    })
    .showHelpAfterError(false);

  const vm = program.command("vm").description("create, run and manage VMs");

  const run = vm.command("run")
    .description(
      "Boot a fresh VM, copy the repository at [path] to /root/repo and run the\n" +
        "command after --, exiting with its status; without a command, open a shell.\n" +
        "Without [path], the command runs in /root of a bare sandbox.",
    )
    .argument("[path]", "a directory inside a git work tree");
  addVmSpecOptions(run, config)
    .option("--rm", "delete the VM when the command or shell ends")
    .option(
      "--include-untracked",
      "also copy untracked files that git does not ignore",
    )
    .option(
      "--timings <file>",
      "write the time each stage took (ms) to <file> as JSON",
    )
    .option(
      "--dry-run",
      "print the files that would be copied and create nothing",
    )
    .addHelpText(
      "after",
      "\nExamples:\n  banger vm run . -- make test\n  banger vm run --rm ./api -- sh -c 'make && make check'\n",
    )
    .action(async (path: string | undefined, flags: VmRunFlags) => {
      const plan = await planVmRun(path, passthrough, flags, config);
      status = await executeVmRun(plan, daemon, ssh, {
        dryRun: flags.dryRun ?? false,
        timingsFile: flags.timings,
      });
    });

  const listAction = async (flags: { json?: boolean }) => {
    const vms = await daemon.call("vm.list", {}, VmListResultSchema);
    if (flags.json) {
      out(JSON.stringify(vms, null, 2) + "\n");
      return;
    }
    const table = new Table({
      head: [
        "NAME",
        "STATE",
        "IMAGE",
        "IP",
        "VCPU",
        "MEMORY",
        "WORKSPACE",
        "AGE",
      ],
      style: { head: [], border: [] },
      chars: PLAIN_TABLE,
    });
    for (const v of vms) {
      table.push([
        v.name,
        v.state,
        v.image,
        v.ip,
        String(v.vcpu),
        `${v.memoryMib} MiB`,
        v.workspace ?? "-",
        age(v.createdAt),
      ]);
    }
    out(table.toString().split("\n").map((l) => l.trimEnd()).join("\n") + "\n");
  };
  vm.command("list").alias("ls").description("list VMs")
    .option("--json", "print JSON").action(listAction);
  program.command("ps").description("list VMs (same as vm list)")
    .option("--json", "print JSON").action(listAction);

  addVmLifecycleCommands(vm, {
    daemon,
    config,
    setStatus: (code) => (status = Math.max(status, code)),
  });

  vm.command("show").description("show one VM").argument("<vm>")
    .option("--json", "print JSON")
    .action(async (ref: string, flags: { json?: boolean }) => {
      const info = await daemon.call("vm.get", { ref }, VmInfoSchema);
      if (flags.json) out(JSON.stringify(info, null, 2) + "\n");
      else {
        for (const [key, value] of Object.entries(info)) {
          const text = value !== null && typeof value === "object"
            ? Object.entries(value).map(([k, v]) => `${k}=${v}`).join(", ")
            : value;
          out(`${key}: ${text ?? "-"}\n`);
        }
      }
    });

  vm.command("delete").alias("rm").description(
    "delete VMs: stop them and remove their disks",
  )
    .argument("<vm...>", "VM names or ids")
    .action(async (refs: string[]) => {
      const results = await daemon.call(
        "vm.delete",
        { refs },
        BatchResultSchema,
      );
      status = Math.max(status, reportBatch(results, "deleted"));
    });

  vm.command("logs").description("print a VM's serial console").argument("<vm>")
    .option("-f, --follow", "keep printing as the console grows")
    .action(async (ref: string, flags: { follow?: boolean }) => {
      const info = await daemon.call("vm.get", { ref }, VmInfoSchema);
      await printConsole(
        info.name,
        `${info.dir}/console.log`,
        flags.follow ?? false,
      );
    });

  vm.command("ssh").description(
    "open an ssh session in a VM, or run the command after -- there (its\n" +
      "arguments arrive exactly as given, as with vm run; exit status verbatim)",
  )
    .argument("<vm>")
    .action(async (ref: string) => {
      const info = await daemon.call("vm.get", { ref }, VmInfoSchema);
      if (info.state !== "running") {
        throw new Error(
          `Cannot ssh into VM "${info.name}": it is ${info.state}; start it with "banger vm start ${info.name}"`,
        );
      }
      const tty = passthrough === undefined && Deno.stdin.isTerminal();
      const child = new Deno.Command("ssh", {
        args: [
          ...sshArgs(ssh, { name: info.name, ip: info.ip, tty, batch: false }),
          // One quoted string: ssh would join the words with spaces and the
          // guest's shell would split them again.
          ...(passthrough === undefined ? [] : [shellJoin(passthrough)]),
        ],
        stdin: "inherit",
        stdout: "inherit",
        stderr: "inherit",
      }).spawn();
      status = await withActivity(
        daemon,
        info.id,
        async () => (await child.status).code,
      );
    });

  vm.command("ports").description(
    "list the guest's listening sockets as <name>.vm:<port>, with http:// links",
  )
    .argument("<vm...>", "VM names or ids")
    .option("--json", "print JSON")
    .action(async (refs: string[], flags: { json?: boolean }) => {
      const results = await vmPorts(daemon, ssh, refs);
      for (const r of results) {
        if (!r.ok) {
          printError(r.error);
          status = 1;
        }
      }
      const ports = results.flatMap((r) => r.ok ? r.ports : []);
      if (flags.json) out(JSON.stringify(ports, null, 2) + "\n");
      else out(formatPorts(ports));
    });

  program.command("ssh-config").description(
    "print banger's ssh_config for <name>.vm hosts, or --install an Include\n" +
      "of it in ~/.ssh/config so that plain `ssh <name>.vm` works",
  )
    .option("--install", "write it and add a marked Include to ~/.ssh/config")
    .option("--uninstall", "remove banger's Include from ~/.ssh/config")
    .action(async (flags: { install?: boolean; uninstall?: boolean }) => {
      if (flags.install && flags.uninstall) {
        throw new RangeError(
          "Invalid flags: --install and --uninstall exclude each other",
        );
      }
      const inputs = { ...ssh, launcher, root: paths.root };
      if (flags.uninstall) {
        const change = await uninstallSshConfig(paths);
        note(
          change.changed
            ? `removed banger's Include from ${change.userConfig}`
            : `${change.userConfig} has no banger Include; nothing to do`,
        );
      } else if (flags.install) {
        const change = await installSshConfig(paths, inputs);
        note(
          change.changed
            ? `wrote ${change.sshConfig} and included it from ${change.userConfig}; try "ssh <name>.vm"`
            : `${change.userConfig} already includes ${change.sshConfig}`,
        );
      } else {
        out(renderSshConfig(inputs));
      }
    });

  addKernelCommands(program, daemon, paths);

  const image = program.command("image").description("build and list images");
  image.command("build").description(
    "build a golden image from the distribution's mirror (done for you on first use)",
  )
    .argument("[name]", "image name", config.defaultImage)
    .option("--json", "print JSON")
    .action(async (name: string, flags: { json?: boolean }) => {
      const progress = new Progress();
      const info = await daemon.call("image.build", { name }, ImageInfoSchema, {
        onProgress: (p) => progress.update(p.stage, p.detail),
      });
      progress.done(`image ${info.name} ready`);
      if (flags.json) out(JSON.stringify(info, null, 2) + "\n");
    });
  image.command("list").alias("ls").description("list built images")
    .option("--json", "print JSON")
    .action(async (flags: { json?: boolean }) => {
      const images = await daemon.call("image.list", {}, ImageListResultSchema);
      if (flags.json) out(JSON.stringify(images, null, 2) + "\n");
      else {for (const i of images) {
          out(`${i.name}  ${i.kernelRelease}  ${i.dir}\n`);
        }}
    });

  const daemonCmd = program.command("daemon").description(
    "run or stop the owner daemon",
  );
  daemonCmd.command("stop").description(
    "stop the daemon (running VMs keep running)",
  )
    .action(async () => {
      const answered = await daemon.callIfRunning(
        "daemon.shutdown",
        {},
        z.unknown(),
      );
      note(
        answered === undefined
          ? "banger: no daemon is running"
          : "banger: daemon stopping",
      );
      // A helper is only ever started by this CLI as root, so as root the
      // CLI stops it too; under a system install systemd owns it instead.
      if ((Deno.uid() ?? 0) === 0 && !(await isSystemInstall(paths))) {
        const stopped = await call(
          paths.helperSocket,
          "shutdown",
          {},
          z.unknown(),
        )
          .then(() => true, () => false);
        if (stopped) note("banger: helper stopping");
      }
    });
  program.command("helper").description(
    "run the root helper (started for you when needed)",
  );

  const internal = program.command("internal", { hidden: true });
  internal.command("probe-permissions").description(
    "report what this role may do",
  )
    .action(async () => {
      out(JSON.stringify(await probePermissions(), null, 2) + "\n");
    });
  internal.command("ssh-proxy").description(
    "relay stdin/stdout to <name>.vm:<port> (ssh_config's ProxyCommand)",
  )
    .argument("<host>").argument("<port>")
    .action(async (host: string, port: string) => {
      await sshProxy(daemon, host, port);
    });
  internal.command("helper-call").description("send one request to the helper")
    .argument("<method>").argument("[params]")
    .action(async (method: string, params: string | undefined) => {
      const result = await call(
        paths.helperSocket,
        method,
        JSON.parse(params ?? "{}"),
        z.unknown(),
      );
      out(JSON.stringify(result) + "\n");
    });

  program.hook("preAction", (_program, action) => {
    const daemonStop = action.name() === "stop" &&
      action.parent?.name() === "daemon";
    if (configError !== undefined && !daemonStop) throw configError;
  });

  tidyHelp(program);
  try {
    await program.parseAsync(own, { from: "user" });
    return status;
  } catch (error) {
    return reportError(error);
  }
}

/** Prints an error for people and returns the exit status. */
function reportError(error: unknown): number {
  if (error instanceof CommanderError) {
    return error.exitCode === 0
      ? 0
      : (error.code === "commander.helpDisplayed" ? 0 : 1);
  }
  if (error instanceof RpcError) {
    printError(`${error.message}${error.op ? ` (${error.op})` : ""}`);
    return 1;
  }
  printError(error instanceof Error ? error.message : String(error));
  return 1;
}

async function printConsole(
  name: string,
  path: string,
  follow: boolean,
): Promise<void> {
  let offset = 0;
  let inode: number | null = null;
  let said = false;
  const buffer = new Uint8Array(64 * 1024);
  while (true) {
    const stat = await Deno.stat(path).catch(() => undefined);
    if (stat === undefined) {
      // Never started: no console yet. A follow waits for the first boot.
      if (!said) {
        note(`banger: VM "${name}" has no console output yet: it never booted`);
        said = true;
      }
      if (!follow) return;
    } else {
      // Each start writes a new console file: follow it from its start.
      if (stat.ino !== inode || stat.size < offset) offset = 0;
      inode = stat.ino;
      const file = await Deno.open(path, { read: true });
      try {
        await file.seek(offset, Deno.SeekMode.Start);
        while (true) {
          const n = await file.read(buffer);
          if (n === null) break;
          offset += n;
          await Deno.stdout.write(buffer.subarray(0, n));
        }
      } finally {
        file.close();
      }
      if (!follow) return;
    }
    await new Promise((r) => setTimeout(r, 500));
  }
}

function age(iso: string): string {
  const seconds = Math.max(
    0,
    Math.round((Date.now() - Date.parse(iso)) / 1000),
  );
  if (seconds < 120) return `${seconds}s`;
  if (seconds < 7200) return `${Math.round(seconds / 60)}m`;
  if (seconds < 172800) return `${Math.round(seconds / 3600)}h`;
  return `${Math.round(seconds / 86400)}d`;
}

const PLAIN_TABLE = {
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
