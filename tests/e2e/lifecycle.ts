/**
 * End-to-end scenarios of the VM lifecycle: stop/start, restart, kill,
 * prune, delete, daemon and helper crashes, parallel creates and a create
 * that fails half-way. Each boots as few guests as its checks need.
 *
 * @module
 */
import { join } from "node:path";
import { check, type Scenario } from "./harness.ts";
import { assertNothingLeft, type ScenarioDef } from "./scenarios.ts";

interface Vm {
  id: string;
  name: string;
  state: string;
  ip: string;
  tap: string;
  pid: number | null;
  dir: string;
}

/** Memory for test guests: enough for Debian, small enough for four. */
const TEST_MEMORY = "768M";

async function create(s: Scenario, args: string[]): Promise<Vm> {
  const out = await s.banger(
    ["vm", "create", "--memory", TEST_MEMORY, "--json", ...args],
    { expectCode: 0 },
  );
  return JSON.parse(out.stdout) as Vm;
}

async function show(s: Scenario, name: string): Promise<Vm> {
  const out = await s.banger(["vm", "show", name, "--json"], {
    expectCode: 0,
  });
  return JSON.parse(out.stdout) as Vm;
}

/** Runs `command` in the guest through `vm ssh`; returns trimmed stdout. */
async function guest(s: Scenario, name: string, command: string) {
  const out = await s.banger(["vm", "ssh", name, "--", "sh", "-c", command], {
    expectCode: 0,
  });
  return out.stdout.trim();
}

async function bootId(s: Scenario, name: string): Promise<string> {
  const id = await guest(s, name, "cat /proc/sys/kernel/random/boot_id");
  check(/^[0-9a-f-]{36}$/.test(id), `"${id}" is not a boot id`);
  return id;
}

/** True when `pid` runs (a zombie has exited: only its reaping is due). */
async function processAlive(s: Scenario, pid: number): Promise<boolean> {
  const out = await s.sh("ps", ["-o", "stat=", "-p", String(pid)]);
  const stat = out.stdout.trim();
  return out.code === 0 && stat !== "" && !stat.startsWith("Z");
}

/** The VM holds no host resources: no VMM, tap or handles file. */
async function assertReleased(s: Scenario, vm: Vm): Promise<void> {
  const now = await show(s, vm.name);
  check(now.state === "stopped", `${vm.name} is ${now.state}, not stopped`);
  check(now.pid === null, `${vm.name} still records pid ${now.pid}`);
  if (vm.pid) {
    check(
      !(await processAlive(s, vm.pid)),
      `VMM ${vm.pid} of ${vm.name} is still alive`,
    );
  }
  const taps = await s.links(vm.tap);
  check(taps.length === 0, `tap ${vm.tap} of ${vm.name} is still there`);
  const handles = await Deno.stat(join(vm.dir, "handles.json")).then(
    () => true,
    () => false,
  );
  check(!handles, `${vm.name} still has a handles file`);
}

async function readPid(path: string): Promise<number> {
  const pid = Number((await Deno.readTextFile(path)).trim());
  check(pid > 0, `no pid in ${path}`);
  return pid;
}

export const LIFECYCLE_SCENARIOS: Record<string, ScenarioDef> = {
  "stop-start-keeps-data": {
    description:
      "data written under /root just before vm stop is there after vm start",
    core: true,
    async run(s) {
      const vm = await create(s, ["--name", "keeper"]);
      const token = crypto.randomUUID();
      // No sync here: vm stop has to flush it.
      await guest(s, "keeper", `echo ${token} > /root/token.txt`);
      // vm ssh -- cmd: arguments arrive as given, the status comes back.
      const status = await s.banger([
        "vm",
        "ssh",
        "keeper",
        "--",
        "sh",
        "-c",
        "exit 42",
      ]);
      check(
        status.code === 42,
        `vm ssh -- sh -c 'exit 42' gave ${status.code}`,
      );
      const words = await s.banger([
        "vm",
        "ssh",
        "keeper",
        "--",
        "printf",
        "[%s]",
        "a b",
        `c"d`,
        "e'f",
        "$HOME",
        "|",
      ], { expectCode: 0 });
      check(
        words.stdout === `[a b][c"d][e'f][$HOME][|]`,
        `vm ssh passed the arguments as ${words.stdout}`,
      );
      const stop = await s.banger(["vm", "stop", "keeper"], { expectCode: 0 });
      check(stop.stdout.includes("keeper: stopped"), "stop did not report");
      // A clean power-off, the opposite of what the kill scenario checks.
      const console = await s.banger(["vm", "logs", "keeper"], {
        expectCode: 0,
      });
      check(
        /reboot: Power down|System Power Off/.test(console.stdout),
        "vm stop did not power the guest off",
      );
      await assertReleased(s, vm);
      const refused = await s.banger(["vm", "ssh", "keeper", "--", "true"]);
      check(
        refused.code === 1 && refused.stderr.includes("it is stopped"),
        `ssh into a stopped VM: ${refused.stderr}`,
      );
      await s.banger(["vm", "start", "keeper"], { expectCode: 0 });
      const read = await guest(s, "keeper", "cat /root/token.txt");
      check(read === token, `after stop/start /root/token.txt is "${read}"`);
      const after = await show(s, "keeper");
      check(
        after.ip === vm.ip && after.tap === vm.tap,
        "the VM changed address or tap across stop/start",
      );
      await s.banger(["vm", "delete", "keeper"], { expectCode: 0 });
      await assertNothingLeft(s);
    },
  },
  "restart-new-boot-id": {
    description: "vm restart is a real reboot: a new guest boot id",
    core: true,
    async run(s) {
      const vm = await create(s, ["--name", "phoenix"]);
      const before = await bootId(s, "phoenix");
      const out = await s.banger(["vm", "restart", "phoenix"], {
        expectCode: 0,
      });
      check(out.stdout.includes("phoenix: restarted"), "no restart report");
      const after = await bootId(s, "phoenix");
      check(after !== before, `boot id unchanged (${before})`);
      const now = await show(s, "phoenix");
      check(now.state === "running", `state after restart: ${now.state}`);
      check(now.pid !== vm.pid, "the VMM pid did not change");
      await s.banger(["vm", "delete", "phoenix"], { expectCode: 0 });
      await assertNothingLeft(s);
    },
  },
  "kill": {
    description:
      "vm kill ends the VMM at once and leaves the VM stopped and cleaned",
    core: true,
    async run(s) {
      const vm = await create(s, ["--name", "target"]);
      const out = await s.banger(["vm", "kill", "target", "ghost"]);
      check(out.code === 1, `kill with an unknown VM exited ${out.code}`);
      check(out.stdout.includes("target: killed"), "target was not killed");
      check(
        out.stderr.includes('Cannot find VM "ghost"'),
        `unknown VM not reported: ${out.stderr}`,
      );
      // Killed, not shut down: the guest never got to power itself off.
      const console = await s.banger(["vm", "logs", "target"], {
        expectCode: 0,
      });
      check(
        !/reboot: Power down|System Power Off/.test(console.stdout),
        "the guest shut down cleanly: vm kill behaved like vm stop",
      );
      await assertReleased(s, vm);
      const bad = await s.banger(["vm", "kill", "--signal", "STOP", "target"]);
      check(
        bad.code === 1 && bad.stderr.includes('Invalid --signal "STOP"'),
        `bad signal: ${bad.stderr}`,
      );
      await s.banger(["vm", "delete", "target"], { expectCode: 0 });
      await assertNothingLeft(s);
    },
  },
  "prune-keeps-running": {
    description:
      "vm prune asks first, then deletes stopped VMs and keeps running ones",
    core: true,
    async run(s) {
      await create(s, ["--name", "alive"]);
      await create(s, ["--name", "idle-one", "--no-start"]);
      await create(s, ["--name", "idle-two", "--no-start"]);
      const unasked = await s.banger(["vm", "prune"]);
      check(
        unasked.code === 1 && unasked.stderr.includes("pass -f"),
        `prune without a terminal or -f: ${unasked.stderr}`,
      );
      check((await s.vms()).length === 3, "prune without -f deleted VMs");
      const out = await s.banger(["vm", "prune", "-f"], { expectCode: 0 });
      check(
        out.stdout.includes("idle-one: deleted") &&
          out.stdout.includes("idle-two: deleted"),
        `prune output: ${out.stdout}`,
      );
      const ps = await s.banger(["ps", "--json"], { expectCode: 0 });
      const left = JSON.parse(ps.stdout) as Vm[];
      check(
        left.length === 1 && left[0]!.name === "alive" &&
          left[0]!.state === "running",
        `after prune: ${ps.stdout}`,
      );
      check(
        (await guest(s, "alive", "hostname")) === "alive",
        "the running VM stopped answering",
      );
      await s.banger(["vm", "delete", "alive"], { expectCode: 0 });
      await assertNothingLeft(s);
    },
  },
  "delete-cleans-everything": {
    description:
      "vm delete of a running VM with a corrupt handles file removes VMM, tap, disks, row and known_hosts lines",
    core: true,
    async run(s) {
      const vm = await create(s, ["--name", "gone"]);
      await guest(s, "gone", "true");
      const knownHosts = join(s.home, ".local/state/banger/ssh/known_hosts");
      const before = await Deno.readTextFile(knownHosts);
      check(before.includes("gone.vm"), "no known_hosts line to remove");
      await Deno.writeTextFile(join(vm.dir, "handles.json"), "{garbage");
      const out = await s.banger(["vm", "delete", "gone", "gone", "ghost"]);
      check(out.code === 1, `delete with an unknown VM exited ${out.code}`);
      check(
        out.stdout === "gone: deleted\ngone: deleted\n",
        `delete output: ${JSON.stringify(out.stdout)}`,
      );
      const after = await Deno.readTextFile(knownHosts).catch(() => "");
      check(
        !after.includes("gone.vm") && !after.includes(vm.ip),
        `known_hosts still names the VM: ${after}`,
      );
      check(!(await processAlive(s, vm.pid!)), "the VMM survived delete");
      await assertNothingLeft(s);
    },
  },
  "daemon-helper-killed": {
    description:
      "kill -9 of daemon and helper: the VM keeps running (same VMM, same boot id) and stays manageable",
    core: true,
    async run(s) {
      const vm = await create(s, ["--name", "survivor"]);
      const before = await bootId(s, "survivor");
      const daemonPid = await readPid(join(s.root, "run/banger/daemon.pid"));
      const helperPid = await readPid(
        join(s.root, "run/banger-root/helper.pid"),
      );
      await s.sh("kill", ["-KILL", String(daemonPid), String(helperPid)]);
      for (let i = 0; i < 50; i++) {
        if (
          !(await processAlive(s, daemonPid)) &&
          !(await processAlive(s, helperPid))
        ) break;
        await new Promise((r) => setTimeout(r, 100));
      }
      check(!(await processAlive(s, daemonPid)), "the daemon survived -9");
      check(await processAlive(s, vm.pid!), "the VMM died with the daemon");

      // The next command starts a new daemon and helper, which adopt it.
      const now = await show(s, "survivor");
      check(now.state === "running", `after the crash: ${now.state}`);
      check(now.pid === vm.pid, `pid ${now.pid}, expected ${vm.pid}`);
      const newDaemon = await readPid(join(s.root, "run/banger/daemon.pid"));
      check(newDaemon !== daemonPid, "no new daemon was started");
      const after = await bootId(s, "survivor");
      check(after === before, `boot id changed: ${before} -> ${after}`);

      // The helper alone dies; the daemon lives on. The next command starts
      // a new helper, so the stop can still remove the tap.
      const secondHelper = await readPid(
        join(s.root, "run/banger-root/helper.pid"),
      );
      await s.sh("kill", ["-KILL", String(secondHelper)]);
      for (let i = 0; i < 50 && await processAlive(s, secondHelper); i++) {
        await new Promise((r) => setTimeout(r, 100));
      }
      await s.banger(["vm", "stop", "survivor"], { expectCode: 0 });
      const thirdHelper = await readPid(
        join(s.root, "run/banger-root/helper.pid"),
      );
      check(thirdHelper !== secondHelper, "no new helper was started");
      await assertReleased(s, vm);
      await s.banger(["vm", "delete", "survivor"], { expectCode: 0 });
      await assertNothingLeft(s);
    },
  },
  "parallel-creates": {
    description:
      "four parallel creates get distinct names, addresses and taps, and all answer",
    core: true,
    async run(s) {
      const vms = await Promise.all(
        [1, 2, 3, 4].map(() => create(s, ["--vcpu", "1"])),
      );
      const distinct = (key: keyof Vm) =>
        new Set(vms.map((v) => v[key])).size === vms.length;
      check(distinct("name"), "names collide");
      check(distinct("ip"), "addresses collide");
      check(distinct("tap"), "taps collide");
      for (const vm of vms) {
        check(
          /^[a-z]+-[a-z]+(-\d+)?$/.test(vm.name),
          `"${vm.name}" is not a generated name`,
        );
        const hostname = await guest(s, vm.name, "hostname");
        check(hostname === vm.name, `${vm.name} says it is "${hostname}"`);
      }
      await s.banger(["vm", "delete", ...vms.map((v) => v.name)], {
        expectCode: 0,
      });
      await assertNothingLeft(s);
    },
  },
  "auto-stop-stale": {
    description:
      "auto_stop_stale_after stops an idle VM, but not during a long vm ssh session",
    core: false,
    async run(s) {
      const limit = 20;
      await Deno.mkdir(join(s.root, "etc/banger"), { recursive: true });
      await Deno.writeTextFile(
        join(s.root, "etc/banger/config.toml"),
        `auto_stop_stale_after = ${limit}\n`,
      );
      const vm = await create(s, ["--name", "sleepy"]);
      // A session longer than the limit keeps the VM in use throughout.
      await s.banger(["vm", "ssh", "sleepy", "--", "sleep", `${limit + 10}`], {
        expectCode: 0,
      });
      const during = await show(s, "sleepy");
      check(
        during.state === "running",
        `stopped during a session: ${during.state}`,
      );
      const idleSince = performance.now();
      let state = during.state;
      while (state === "running" && performance.now() - idleSince < 120_000) {
        await new Promise((r) => setTimeout(r, 2000));
        state = (await show(s, "sleepy")).state;
      }
      const idle = (performance.now() - idleSince) / 1000;
      check(
        state === "stopped",
        `still ${state} after ${idle.toFixed(0)}s idle`,
      );
      check(idle >= limit - 2, `stopped after only ${idle.toFixed(0)}s idle`);
      await assertReleased(s, vm);
      await s.banger(["vm", "delete", "sleepy"], { expectCode: 0 });
      await assertNothingLeft(s);
    },
  },
  "create-failure-injection": {
    description:
      "a create that fails after QEMU started leaves no row, disk, tap or process",
    core: true,
    async run(s) {
      // The CLI starts the daemon with its own environment, so the daemon
      // of this scenario injects the failure.
      const out = await s.banger(["vm", "create", "--name", "doomed"], {
        env: { BANGER_TEST_FAIL_AFTER_STAGE: "vmm" },
      });
      check(out.code === 1, `failed create exited ${out.code}`);
      check(
        out.stderr.includes('Injected failure after stage "vmm"'),
        `unexpected error: ${out.stderr}`,
      );
      await assertNothingLeft(s);
      // The name is free again.
      const bad = await s.banger(["vm", "create", "--name", "Bad_Name"]);
      check(
        bad.code === 1 && bad.stderr.includes('Invalid VM name "Bad_Name"'),
        `bad name: ${bad.stderr}`,
      );
      const size = await s.banger(["vm", "create", "--memory", "0"]);
      check(
        size.code === 1 && size.stderr.includes('Invalid --memory "0"'),
        `bad size: ${size.stderr}`,
      );
      await assertNothingLeft(s);
    },
  },
};
