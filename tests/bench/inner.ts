/**
 * The measurements, run inside a network namespace (see main.ts).
 *
 * 1. `vm run --rm -- true` against a bare QEMU boot-to-ssh of the same
 *    kernel, image and seed, with banger's time by stage; and, when
 *    scripts/build-fc-kernel.sh has built one, the same run with a kernel
 *    from Firecracker's guest config against the image's own;
 * 2. a CLI round trip (`vm list`) against a bare Deno start;
 * 3. copying a generated repository (5 000 files, 50 MB) into a guest
 *    against `git archive | ssh tar x` to the same guest;
 * 4. four parallel `vm run --rm` against one;
 * 5. the daemon's resident memory idle and with four VMs running.
 *
 * @module
 */
import { join } from "node:path";
import { exec, FC_GUEST_KERNEL, Scenario } from "../e2e/harness.ts";
import { sshArgs } from "../../src/ssh/options.ts";
import { VM_RUN_STAGES } from "../../src/cli/vm_run.ts";

const [work, cacheDir, ...rest] = Deno.args as [string, string, ...string[]];
const runs = Number(flag("--runs") ?? "3");
const outFile = flag("--out") ?? "bench-results.json";
function flag(name: string): string | undefined {
  const i = rest.indexOf(name);
  return i >= 0 ? rest[i + 1] : undefined;
}

await exec("ip", ["link", "set", "lo", "up"], {});
const root = join(work, "root");
const home = join(work, "home");
await Deno.mkdir(root, { recursive: true });
await Deno.mkdir(home, { recursive: true });
const s = new Scenario("bench", root, home, cacheDir, () => {});
const results: Record<string, unknown> = {
  date: new Date().toISOString(),
  runs,
};
const rows: [string, string, string, string][] = [];
const seconds = (ms: number) => `${(ms / 1000).toFixed(2)} s`;
const median = (xs: number[]) => {
  const sorted = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2
    ? sorted[mid]!
    : (sorted[mid - 1]! + sorted[mid]!) / 2;
};
async function timed(fn: () => Promise<unknown>): Promise<number> {
  const start = performance.now();
  await fn();
  return performance.now() - start;
}
function progress(text: string) {
  console.error(`bench: ${text}`);
}

try {
  // Warm up: starts the daemon and helper, installs the image in this root.
  progress("warming up (daemon start, image install)");
  await s.banger(["vm", "run", "--rm", "--", "true"], { expectCode: 0 });

  // 1. vm run --rm -- true against a bare QEMU boot.
  const { times: runTimes, stageRuns } = await vmRunTrue([]);
  const bareTimes: number[] = [];
  for (let i = 0; i < runs; i++) {
    progress(`bare QEMU boot to ssh (${i + 1}/${runs})`);
    bareTimes.push(await bareBoot(i));
  }
  const stageMedians = medianStages(stageRuns);
  results.vmRun = {
    bangerMs: median(runTimes),
    bareQemuMs: median(bareTimes),
    ratio: median(runTimes) / median(bareTimes),
    stagesMs: stageMedians,
    allBangerMs: runTimes,
    allBareMs: bareTimes,
  };
  rows.push([
    "vm run --rm -- true vs bare QEMU boot-to-ssh",
    seconds(median(runTimes)),
    seconds(median(bareTimes)),
    (median(runTimes) / median(bareTimes)).toFixed(2),
  ]);

  // 1b. The same run with a kernel built from Firecracker's guest config
  // (no initrd), when scripts/build-fc-kernel.sh has made one.
  if (await Deno.stat(FC_GUEST_KERNEL).then(() => true, () => false)) {
    await s.banger(["kernel", "import", "fc-6.1", FC_GUEST_KERNEL], {
      expectCode: 0,
    });
    const { times: fcTimes, stageRuns: fcStageRuns } = await vmRunTrue([
      "--kernel",
      "fc-6.1",
    ]);
    results.fcKernelRun = {
      bangerMs: median(fcTimes),
      imageKernelMs: median(runTimes),
      ratio: median(fcTimes) / median(runTimes),
      stagesMs: medianStages(fcStageRuns),
      allMs: fcTimes,
    };
    rows.push([
      "vm run --rm --kernel <Firecracker-config build> vs image's kernel",
      seconds(median(fcTimes)),
      seconds(median(runTimes)),
      (median(fcTimes) / median(runTimes)).toFixed(2),
    ]);
  } else {
    progress(
      `no kernel at ${FC_GUEST_KERNEL}; scripts/build-fc-kernel.sh makes one for the --kernel measurement`,
    );
    results.fcKernelRun = null;
  }

  // 2. CLI round trip against a bare Deno start.
  progress("CLI round trip");
  const listTimes: number[] = [];
  const denoTimes: number[] = [];
  for (let i = 0; i < 10; i++) {
    listTimes.push(
      await timed(() => s.banger(["vm", "list", "--json"], { expectCode: 0 })),
    );
    denoTimes.push(await timed(() => exec(Deno.execPath(), ["eval", ""], {})));
  }
  results.cliRoundTrip = {
    bangerMs: median(listTimes),
    denoEvalMs: median(denoTimes),
    ratio: median(listTimes) / median(denoTimes),
  };
  rows.push([
    "vm list vs deno eval ''",
    seconds(median(listTimes)),
    seconds(median(denoTimes)),
    (median(listTimes) / median(denoTimes)).toFixed(2),
  ]);

  // 3. Workspace copy against git archive | ssh tar x.
  progress("generating a 5 000 file, 50 MB repository");
  const repo = await bigRepo();
  progress("workspace copy");
  const copyFile = join(work, "copy.json");
  await s.banger([
    "vm",
    "run",
    "--name",
    "copybench",
    "--timings",
    copyFile,
    repo,
    "--",
    "true",
  ], { expectCode: 0 });
  const bangerCopy = JSON.parse(await Deno.readTextFile(copyFile))
    .workspace as number;
  const vm = (await s.vms()).find((v) => v.name === "copybench")!;
  const ssh = sshArgs(
    {
      key: join(root, "var/lib/banger/ssh/id_ed25519"),
      knownHosts: join(home, ".local/state/banger/ssh/known_hosts"),
    },
    { name: vm.name, ip: vm.ip },
  );
  const archiveMs = await timed(() =>
    exec("sh", [
      "-c",
      `repo="$1"; shift; git -C "$repo" archive HEAD | ssh "$@" 'mkdir -p /root/archive && tar -x -C /root/archive'`,
      "sh",
      repo,
      ...ssh.slice(0),
    ], {})
      .then((r) => {
        if (r.code !== 0) throw new Error(r.stderr);
      })
  );
  await s.banger(["vm", "delete", "copybench"], { expectCode: 0 });
  results.workspaceCopy = {
    bangerMs: bangerCopy,
    gitArchiveSshMs: archiveMs,
    ratio: bangerCopy / archiveMs,
  };
  rows.push([
    "workspace copy (5 000 files, 50 MB) vs git archive | ssh tar x",
    seconds(bangerCopy),
    seconds(archiveMs),
    (bangerCopy / archiveMs).toFixed(2),
  ]);

  // 5a. Daemon memory idle.
  const daemonPid = Number(
    (await Deno.readTextFile(join(root, "run/banger/daemon.pid"))).trim(),
  );
  const rssIdle = await rssKib(daemonPid);

  // 4. Four parallel runs against one; the four stay up for 5b.
  progress("one vm run");
  const one = await timed(() =>
    s.banger(["vm", "run", "--memory", "1G", "--name", "solo", "--", "true"], {
      expectCode: 0,
    })
  );
  await s.banger(["vm", "delete", "solo"], { expectCode: 0 });
  progress("four parallel vm runs");
  const four = await timed(() =>
    Promise.all(
      [1, 2, 3, 4].map((n) =>
        s.banger([
          "vm",
          "run",
          "--memory",
          "1G",
          "--name",
          `par${n}`,
          "--",
          "true",
        ], { expectCode: 0 })
      ),
    )
  );
  results.parallel = { oneMs: one, fourMs: four, ratio: four / one };
  rows.push([
    "four parallel creates vs one",
    seconds(four),
    seconds(one),
    (four / one).toFixed(2),
  ]);

  // 5b. Daemon memory with four VMs.
  const rssFour = await rssKib(daemonPid);
  await s.banger(["vm", "delete", "par1", "par2", "par3", "par4"], {
    expectCode: 0,
  });
  results.daemonMemory = {
    idleKiB: rssIdle,
    fourVmsKiB: rssFour,
    ratio: rssFour / rssIdle,
  };
  rows.push([
    "daemon RSS with four VMs vs idle",
    `${(rssFour / 1024).toFixed(1)} MiB`,
    `${(rssIdle / 1024).toFixed(1)} MiB`,
    (rssFour / rssIdle).toFixed(2),
  ]);
} finally {
  await s.banger(["daemon", "stop"]).catch(() => {});
}

const width = Math.max(...rows.map((r) => r[0].length));
console.log(
  `${"measurement".padEnd(width)}  ${"banger".padStart(10)}  ${
    "baseline".padStart(10)
  }  ratio`,
);
for (const [name, a, b, ratio] of rows) {
  console.log(
    `${name.padEnd(width)}  ${a.padStart(10)}  ${b.padStart(10)}  ${ratio}`,
  );
}
const stagesMs =
  (results.vmRun as { stagesMs: Record<string, number> }).stagesMs;
console.log(
  `vm run stages (median ms): ${
    Object.entries(stagesMs).map(([k, v]) => `${k} ${v}`).join(", ")
  }`,
);
await Deno.writeTextFile(outFile, JSON.stringify(results, null, 2) + "\n");
console.log(`bench: results written to ${outFile}`);

/** Each stage's median over several runs' timings. */
function medianStages(
  stageRuns: Record<string, number>[],
): Record<string, number> {
  return Object.fromEntries(
    VM_RUN_STAGES.map((st) => [st, median(stageRuns.map((r) => r[st] ?? 0))]),
  );
}

/**
 * Times `runs` runs of `vm run --rm <flags> -- true`, each with the stage
 * timings banger wrote for it.
 */
async function vmRunTrue(flags: string[]) {
  const times: number[] = [];
  const stageRuns: Record<string, number>[] = [];
  for (let i = 0; i < runs; i++) {
    const label = ["vm run --rm", ...flags, "-- true"].join(" ");
    progress(`${label} (${i + 1}/${runs})`);
    const file = join(work, `timings-${crypto.randomUUID().slice(0, 8)}.json`);
    times.push(
      await timed(() =>
        s.banger([
          "vm",
          "run",
          "--rm",
          ...flags,
          "--timings",
          file,
          "--",
          "true",
        ], {
          expectCode: 0,
        })
      ),
    );
    stageRuns.push(JSON.parse(await Deno.readTextFile(file)));
  }
  return { times, stageRuns };
}

/** Resident memory of `pid` in KiB. */
async function rssKib(pid: number): Promise<number> {
  const out = await exec("ps", ["-o", "rss=", "-p", String(pid)], {});
  return Number(out.stdout.trim());
}

/** A repository of 5 000 files adding up to 50 MB, committed. */
async function bigRepo(): Promise<string> {
  const dir = join(home, "big");
  const chunk = new Uint8Array(10_000);
  for (let i = 0; i < 5000; i++) {
    const sub = join(dir, `d${i % 50}`);
    if (i < 50) await Deno.mkdir(sub, { recursive: true });
    crypto.getRandomValues(chunk);
    await Deno.writeFile(join(sub, `f${i}.bin`), chunk);
  }
  await s.git(dir, ["init", "-q"]);
  await s.git(dir, ["add", "-A"]);
  await s.git(dir, ["commit", "-q", "-m", "big"]);
  return dir;
}

/**
 * Boots the same kernel, initrd and image with a hand-made seed disk, on a
 * bridge and tap of its own, and returns launch-to-first-ssh milliseconds
 * (disk creation included, as banger's time includes it).
 */
async function bareBoot(i: number): Promise<number> {
  const images = JSON.parse(
    (await s.banger(["image", "list", "--json"], { expectCode: 0 })).stdout,
  ) as { dir: string }[];
  const image = images[0]!.dir;
  const dir = join(work, `bare-${i}`);
  await Deno.mkdir(join(dir, "seed"), { recursive: true });
  await Deno.mkdir(join(dir, "work"), { recursive: true });
  const must = async (program: string, args: string[]) => {
    const r = await exec(program, args, {});
    if (r.code !== 0) {
      throw new Error(`${program} ${args.join(" ")}: ${r.stderr}`);
    }
    return r;
  };
  await must("ip", ["link", "add", "brbare", "type", "bridge"]).catch(() => {});
  await must("ip", ["addr", "replace", "172.31.0.1/24", "dev", "brbare"]);
  await must("ip", ["link", "set", "brbare", "up"]);
  await must("ip", ["tuntap", "add", "dev", "tapbare", "mode", "tap"]);
  await must("ip", ["link", "set", "tapbare", "master", "brbare"]);
  await must("ip", ["link", "set", "tapbare", "up"]);
  const key = join(dir, "key");
  const start = performance.now();
  await must("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", key]);
  await must("ssh-keygen", [
    "-q",
    "-t",
    "ed25519",
    "-N",
    "",
    "-f",
    join(dir, "seed/ssh_host_ed25519_key"),
  ]);
  await Deno.copyFile(`${key}.pub`, join(dir, "seed/authorized_keys"));
  await Deno.writeTextFile(
    join(dir, "seed/guest.env"),
    "BANGER_HOSTNAME='bare'\nBANGER_MAC='52:54:00:aa:00:02'\nBANGER_ADDRESS='172.31.0.2'\nBANGER_PREFIX='24'\nBANGER_GATEWAY='172.31.0.1'\nBANGER_DNS='1.1.1.1'\n",
  );
  await must("cp", ["-a", `${image}/root-skel/.`, join(dir, "work")]);
  await must("qemu-img", [
    "create",
    "-q",
    "-f",
    "qcow2",
    "-b",
    `${image}/rootfs.ext4`,
    "-F",
    "raw",
    join(dir, "root.qcow2"),
  ]);
  await must("mkfs.ext4", [
    "-q",
    "-F",
    "-L",
    "banger-work",
    "-E",
    "root_owner=0:0",
    "-d",
    join(dir, "work"),
    join(dir, "work.ext4"),
    "8G",
  ]);
  await must("mkfs.ext4", [
    "-q",
    "-F",
    "-L",
    "banger-seed",
    "-d",
    join(dir, "seed"),
    join(dir, "seed.ext4"),
    "4M",
  ]);
  const cpuinfo = await must("cat", ["/proc/cpuinfo"]);
  const khz = Math.round(
    Number(cpuinfo.stdout.match(/^cpu MHz\s*:\s*([\d.]+)/m)![1]) * 1000,
  );
  const qemu = new Deno.Command("qemu-system-x86_64", {
    args: [
      "-M",
      "microvm,acpi=on",
      "-accel",
      "tcg,thread=multi",
      "-cpu",
      "max",
      "-smp",
      "2",
      "-m",
      "1024M",
      "-nodefaults",
      "-no-user-config",
      "-display",
      "none",
      "-no-reboot",
      "-serial",
      `file:${join(dir, "console.log")}`,
      "-kernel",
      `${image}/vmlinux`,
      "-initrd",
      `${image}/initrd.img`,
      "-append",
      `console=ttyS0 root=LABEL=banger-root rw panic=-1 net.ifnames=0 tsc_early_khz=${khz}`,
      "-drive",
      `id=root,file=${join(dir, "root.qcow2")},format=qcow2,if=none`,
      "-device",
      "virtio-blk-device,drive=root",
      "-drive",
      `id=work,file=${join(dir, "work.ext4")},format=raw,if=none`,
      "-device",
      "virtio-blk-device,drive=work",
      "-drive",
      `id=seed,file=${join(dir, "seed.ext4")},format=raw,if=none,readonly=on`,
      "-device",
      "virtio-blk-device,drive=seed",
      "-netdev",
      "tap,id=n0,ifname=tapbare,script=no,downscript=no",
      "-device",
      "virtio-net-device,netdev=n0,mac=52:54:00:aa:00:02",
    ],
    stdin: "null",
    stdout: "null",
    stderr: "null",
  }).spawn();
  let elapsed = 0;
  try {
    const deadline = Date.now() + 180_000;
    while (Date.now() < deadline) {
      const r = await exec("ssh", [
        "-i",
        key,
        "-o",
        "StrictHostKeyChecking=no",
        "-o",
        "UserKnownHostsFile=/dev/null",
        "-o",
        "BatchMode=yes",
        "-o",
        "ConnectTimeout=1",
        "-o",
        "LogLevel=ERROR",
        "root@172.31.0.2",
        "true",
      ], {});
      if (r.code === 0) {
        elapsed = performance.now() - start;
        break;
      }
      await new Promise((r) => setTimeout(r, 200));
    }
    if (!elapsed) throw new Error("bare QEMU guest never answered ssh");
  } finally {
    qemu.kill("SIGKILL");
    await qemu.status;
    await exec("ip", ["link", "del", "tapbare"], {});
    await Deno.remove(dir, { recursive: true });
  }
  return elapsed;
}
