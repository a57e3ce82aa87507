/**
 * End-to-end scenarios of the Firecracker driver. This host has no
 * Firecracker, so they run against the stand-in under
 * tests/firecracker_standin/, which validates every API request against
 * Firecracker's schema and boots the configured machine with QEMU. The
 * jailer is disabled: there is no jailer here either.
 *
 * @module
 */
import { join } from "node:path";
import { check, type Scenario } from "./harness.ts";
import { assertNothingLeft, type ScenarioDef } from "./scenarios.ts";

/** The stand-in's executable wrapper. */
export const STANDIN_BIN = new URL(
  "../firecracker_standin/firecracker",
  import.meta.url,
).pathname;

/** Configures the scenario's banger to run VMs in the stand-in. */
async function useStandin(s: Scenario): Promise<void> {
  await Deno.mkdir(join(s.root, "etc/banger"), { recursive: true });
  await Deno.writeTextFile(
    join(s.root, "etc/banger/config.toml"),
    [
      `vmm = "firecracker"`,
      `firecracker_bin = "${STANDIN_BIN}"`,
      `jailer_enabled = false`,
      "",
    ].join("\n"),
  );
}

/** The comm of live process `pid`, or "" when it is gone or a zombie. */
async function pidAlive(s: Scenario, pid: number): Promise<string> {
  const ps = await s.sh("ps", ["-o", "stat=,comm=", "-p", String(pid)]);
  const [state, comm] = ps.stdout.trim().split(/\s+/);
  return ps.code === 0 && state && !state.startsWith("Z") ? comm ?? "" : "";
}

export const FIRECRACKER_SCENARIOS: Record<string, ScenarioDef> = {
  "firecracker-standin": {
    description:
      "vm run <repo> -- cmd through the Firecracker driver (stand-in firecracker, no jailer); the VMM survives a killed daemon and helper",
    core: false,
    async run(s) {
      await useStandin(s);
      const repo = await s.gitRepo("fc-project", {
        "hello.txt": "hello from the host\n",
      });

      const run = await s.banger([
        "vm",
        "run",
        "--rm",
        repo,
        "--",
        "sh",
        "-c",
        "cat hello.txt; cat /proc/cmdline; exit 3",
      ]);
      check(run.code === 3, `vm run exited ${run.code}, expected 3`);
      check(
        run.stdout.includes("hello from the host"),
        "the repository did not reach the guest",
      );
      // Firecracker, not banger, names the root device; seeing it proves
      // the boot went through the Firecracker API.
      check(
        run.stdout.includes("root=/dev/vda rw"),
        `the guest was not booted through the Firecracker API: ${run.stdout}`,
      );
      const daemonLog = await Deno.readTextFile(
        join(s.root, "var/lib/banger/daemon.log"),
      );
      check(
        daemonLog.includes('"msg":"using Firecracker"'),
        "the daemon did not choose the Firecracker driver",
      );

      // A VM left running must outlive a daemon and a helper killed hard.
      await s.banger(["vm", "run", "--name", "fc-keep", repo, "--", "true"], {
        expectCode: 0,
      });
      const [vm] = await s.vms();
      check(vm?.name === "fc-keep", "the kept VM is not listed");
      const pid = Number(
        await Deno.readTextFile(join(vm.dir, "vmm.pid")),
      );
      check(
        (await pidAlive(s, pid)) === "firecracker",
        `VMM pid ${pid} is not a firecracker process`,
      );
      for (
        const file of ["run/banger/daemon.pid", "run/banger-root/helper.pid"]
      ) {
        const rolePid = (await Deno.readTextFile(join(s.root, file))).trim();
        await s.sh("kill", ["-KILL", rolePid]);
      }
      const after = await s.vms();
      check(
        after[0]?.state === "running",
        `after a daemon restart the VM is ${after[0]?.state}, not adopted`,
      );
      check(
        (await pidAlive(s, pid)) === "firecracker",
        "the VMM died with the daemon",
      );
      const hostname = await s.banger(
        ["vm", "ssh", "fc-keep", "--", "cat", "/etc/hostname"],
        { expectCode: 0 },
      );
      check(
        hostname.stdout.trim() === "fc-keep",
        `ssh after the restart reached "${hostname.stdout.trim()}"`,
      );

      await s.banger(["vm", "delete", "fc-keep"], { expectCode: 0 });
      check((await pidAlive(s, pid)) === "", "the VMM outlived vm delete");
      const sockets = [];
      for await (const e of Deno.readDir(join(s.root, "run/banger/vmm"))) {
        sockets.push(e.name);
      }
      check(
        sockets.length === 0,
        `control sockets left: ${sockets.join(", ")}`,
      );
      await assertNothingLeft(s);
    },
  },
};
