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
import { check, FC_GUEST_KERNEL, type Scenario } from "./harness.ts";
import { assertNothingLeft, type ScenarioDef } from "./scenarios.ts";

/** The stand-in's executable wrapper. */
export const STANDIN_BIN = new URL(
  "../firecracker_standin/firecracker",
  import.meta.url,
).pathname;

/** The stand-in jailer's executable wrapper. */
export const STANDIN_JAILER = new URL(
  "../firecracker_standin/jailer",
  import.meta.url,
).pathname;

/** Configures the scenario's banger to run VMs in the stand-in. */
async function useStandin(s: Scenario, jailer = false): Promise<void> {
  await Deno.mkdir(join(s.root, "etc/banger"), { recursive: true });
  await Deno.writeTextFile(
    join(s.root, "etc/banger/config.toml"),
    [
      `vmm = "firecracker"`,
      `firecracker_bin = "${STANDIN_BIN}"`,
      `jailer_bin = "${STANDIN_JAILER}"`,
      `jailer_enabled = ${jailer}`,
      "",
    ].join("\n"),
  );
}

/** The newest golden image directory in the build cache. */
async function cachedImageDir(s: Scenario): Promise<string> {
  const images = join(s.cacheDir, "images");
  let newest: { dir: string; time: number } | undefined;
  for await (const entry of Deno.readDir(images)) {
    const dir = join(images, entry.name);
    const kernel = await Deno.stat(join(dir, "vmlinux")).catch(() => undefined);
    const time = kernel?.mtime?.getTime() ?? -1;
    if (entry.isDirectory && time >= 0 && time > (newest?.time ?? -1)) {
      newest = { dir, time };
    }
  }
  if (!newest) throw new Error(`no built image in "${images}"`);
  return newest.dir;
}

/** Mount points at or below `dir` in this mount namespace. */
async function mountsBelow(s: Scenario, dir: string): Promise<string[]> {
  const table = await s.sh("cat", ["/proc/self/mountinfo"]);
  return table.stdout.split("\n").map((line) => line.split(" ")[4] ?? "")
    .filter((point) => point === dir || point.startsWith(`${dir}/`));
}

/** The comm of live process `pid`, or "" when it is gone or a zombie. */
async function pidAlive(s: Scenario, pid: number): Promise<string> {
  const ps = await s.sh("ps", ["-o", "stat=,comm=", "-p", String(pid)]);
  const [state, comm] = ps.stdout.trim().split(/\s+/);
  return ps.code === 0 && state && !state.startsWith("Z") ? comm ?? "" : "";
}

export const FIRECRACKER_SCENARIOS: Record<string, ScenarioDef> = {
  "firecracker-jailed": {
    description:
      "vm run through the jailer path: helper-staged chroot, long socket behind a symlink, cleanup after a killed daemon and helper (stand-in jailer and firecracker)",
    core: true,
    async run(s) {
      await useStandin(s, true);
      const repo = await s.gitRepo("fc-jailed", { "hello.txt": "jailed\n" });
      const run = await s.banger(
        ["vm", "run", "--name", "fc-jail", repo, "--", "cat", "hello.txt"],
        { expectCode: 0 },
      );
      check(run.stdout === "jailed\n", `the guest printed "${run.stdout}"`);
      const [vm] = await s.vms();
      check(vm?.name === "fc-jail", "the jailed VM is not listed");
      const id = vm.dir.split("/").pop()!;
      const jailDir = join(s.root, "var/lib/banger-root/jail/firecracker", id);
      const root = join(jailDir, "root");

      // The jail holds hard links of the VM's files, not copies.
      const kernel = await Deno.stat(join(root, "vmlinux"));
      check(
        (kernel.nlink ?? 0) >= 2,
        "the kernel in the jail is not a hard link",
      );
      const [inJail, inVm] = await Promise.all([
        Deno.stat(join(root, "drive-root")),
        Deno.stat(join(vm.dir, "root.img")),
      ]);
      check(inJail.ino === inVm.ino, "the root disk in the jail is a copy");
      check(
        (await mountsBelow(s, jailDir)).includes(root),
        "the chroot is not bind-mounted onto itself",
      );
      // The API socket is reached through a short symlink.
      const link = join(s.root, "run/banger/vmm/2.sock");
      const target = await Deno.readLink(link);
      check(
        target === join(root, "run/firecracker.socket"),
        `control socket points at "${target}"`,
      );
      check(
        new TextEncoder().encode(target).byteLength > 108,
        `the socket path is only ${target.length} bytes; the test proves nothing`,
      );
      const pid = Number(
        (await Deno.readTextFile(join(root, "firecracker.pid"))).trim(),
      );
      check(
        (await pidAlive(s, pid)) === "firecracker",
        `the jailer's pid ${pid} is not a firecracker process`,
      );

      for (
        const file of ["run/banger/daemon.pid", "run/banger-root/helper.pid"]
      ) {
        const rolePid = (await Deno.readTextFile(join(s.root, file))).trim();
        await s.sh("kill", ["-KILL", rolePid]);
      }
      const after = await s.vms();
      check(after[0]?.state === "running", "the jailed VM was not adopted");
      const hostname = await s.banger(
        ["vm", "ssh", "fc-jail", "--", "cat", "/etc/hostname"],
        { expectCode: 0 },
      );
      check(hostname.stdout.trim() === "fc-jail", "ssh after restart failed");

      await s.banger(["vm", "delete", "fc-jail"], { expectCode: 0 });
      check((await pidAlive(s, pid)) === "", "the jailed VMM outlived delete");
      const left = await mountsBelow(s, s.root);
      check(left.length === 0, `mounts left: ${left.join(", ")}`);
      check(
        !(await Deno.lstat(jailDir).then(() => true, () => false)),
        "the jail directory is left",
      );
      check(
        !(await Deno.lstat(link).then(() => true, () => false)),
        "the control socket symlink is left",
      );
      await assertNothingLeft(s);
    },
  },
  "firecracker-standin": {
    description:
      "vm run --kernel <imported> <repo> -- cmd through the Firecracker driver (stand-in firecracker, no jailer); the VMM survives a killed daemon and helper",
    core: true,
    async run(s) {
      await useStandin(s);
      const repo = await s.gitRepo("fc-project", {
        "hello.txt": "hello from the host\n",
      });

      // The image's own kernel, imported: the --kernel path end to end.
      const image = await cachedImageDir(s);
      await s.banger([
        "kernel",
        "import",
        "debian-import",
        join(image, "vmlinux"),
        "--initrd",
        join(image, "initrd.img"),
      ], { expectCode: 0 });
      const kernels = JSON.parse(
        (await s.banger(["kernel", "list", "--json"], { expectCode: 0 }))
          .stdout,
      ) as { name: string; initrd: boolean }[];
      check(
        kernels.length === 1 && kernels[0]!.name === "debian-import" &&
          kernels[0]!.initrd,
        `kernel list shows ${JSON.stringify(kernels)}`,
      );
      const run = await s.banger([
        "vm",
        "run",
        "--rm",
        "--kernel",
        "debian-import",
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

      // A clean stop: Firecracker exits only when its guest reboots, so
      // banger asks the guest for a reboot (after sync) rather than a
      // power-off, which would leave the process to be killed.
      await s.banger(["vm", "stop", "fc-keep"], { expectCode: 0 });
      check((await pidAlive(s, pid)) === "", "the VMM outlived vm stop");
      const console = await s.banger(["vm", "logs", "fc-keep"], {
        expectCode: 0,
      });
      check(
        console.stdout.includes("reboot: Restarting system"),
        "the guest was not asked to reboot on vm stop",
      );
      const log = await Deno.readTextFile(
        join(s.root, "var/lib/banger/daemon.log"),
      );
      check(
        !log.includes("guest unreachable over ssh"),
        "vm stop did not reach the guest",
      );

      await s.banger(["vm", "delete", "fc-keep"], { expectCode: 0 });
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
  "firecracker-guest-kernel": {
    description:
      "a kernel built from Firecracker's guest config (scripts/build-fc-kernel.sh) boots the image without an initrd, under QEMU and through the Firecracker driver (stand-in)",
    core: false,
    async run(s) {
      const built = await Deno.stat(FC_GUEST_KERNEL).catch(() => undefined);
      check(
        built?.isFile,
        `no kernel at "${FC_GUEST_KERNEL}": run scripts/build-fc-kernel.sh first (or set BANGER_FC_KERNEL)`,
      );
      await s.banger(["kernel", "import", "fc-6.1", FC_GUEST_KERNEL], {
        expectCode: 0,
      });
      const kernels = JSON.parse(
        (await s.banger(["kernel", "list", "--json"], { expectCode: 0 }))
          .stdout,
      ) as { name: string; initrd: boolean }[];
      check(
        kernels.length === 1 && kernels[0]!.name === "fc-6.1" &&
          !kernels[0]!.initrd,
        `kernel list shows ${JSON.stringify(kernels)}`,
      );
      const repo = await s.gitRepo("fc-kernel", { "hello.txt": "no initrd\n" });

      // Boots the kernel with the workspace and returns the guest's kernel
      // command line, after checking what every driver must give.
      const bootFcKernel = async (
        driver: string,
        kernelFlags: string[],
      ): Promise<string> => {
        const run = await s.banger([
          "vm",
          "run",
          "--rm",
          ...kernelFlags,
          repo,
          "--",
          "sh",
          "-c",
          "cat hello.txt; uname -r; cat /proc/cmdline; exit 5",
        ]);
        check(run.code === 5, `${driver}: vm run exited ${run.code}, not 5`);
        const [hello, release, cmdline] = run.stdout.split("\n");
        check(hello === "no initrd", `${driver}: the guest printed "${hello}"`);
        // The image's Debian kernel names itself "...-cloud-amd64"; the
        // Firecracker-config build carries no such suffix.
        check(
          /^6\.1\.\d+$/.test(release ?? ""),
          `${driver}: the guest runs kernel "${release}", not the Firecracker-config build`,
        );
        return cmdline ?? "";
      };

      // Under QEMU first, chosen by default_kernel rather than --kernel:
      // without an initrd nothing resolves root=LABEL=, so banger names the
      // device.
      await Deno.mkdir(join(s.root, "etc/banger"), { recursive: true });
      await Deno.writeTextFile(
        join(s.root, "etc/banger/config.toml"),
        'default_kernel = "fc-6.1"\n',
      );
      const qemuCmdline = await bootFcKernel("QEMU", []);
      check(
        qemuCmdline.includes("root=/dev/vda") &&
          !qemuCmdline.includes("root=LABEL="),
        `QEMU's guest booted with "${qemuCmdline}"`,
      );

      // Then through the Firecracker driver (its stand-in), on a daemon
      // restarted with that configuration: Firecracker, not banger, adds
      // the root device there, and banger adds reboot=k for it.
      await s.banger(["daemon", "stop"], { expectCode: 0 });
      await useStandin(s);
      const fcCmdline = await bootFcKernel("Firecracker", [
        "--kernel",
        "fc-6.1",
      ]);
      check(
        fcCmdline.includes("root=/dev/vda rw") &&
          fcCmdline.includes("reboot=k"),
        `the guest was not booted through the Firecracker API: ${fcCmdline}`,
      );
      const daemonLog = await Deno.readTextFile(
        join(s.root, "var/lib/banger/daemon.log"),
      );
      check(
        daemonLog.includes('"msg":"using Firecracker"'),
        "the restarted daemon did not choose the Firecracker driver",
      );
      await assertNothingLeft(s);
    },
  },
};
