/**
 * VmService against real disks (qemu-img, mkfs.ext4, ssh-keygen) and a
 * real SQLite database, with the host network, the VMM and the guest
 * replaced by fakes that record what they were asked to do. No network
 * change is made, so no namespace is needed.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { parseConfig } from "../../src/config.ts";
import { StateDb } from "../../src/daemon/db.ts";
import type { GuestOps } from "../../src/daemon/guest_ops.ts";
import type { HostNetwork } from "../../src/daemon/host_network.ts";
import type { Image } from "../../src/daemon/images.ts";
import { VM_FILES } from "../../src/daemon/disks.ts";
import { KernelService } from "../../src/daemon/kernels.ts";
import {
  CREATE_STAGES,
  type CreateStage,
  VmService,
} from "../../src/daemon/vms.ts";
import { resolvePaths } from "../../src/paths.ts";
import { ensureKeyPair } from "../../src/ssh/keys.ts";
import { Logger } from "../../src/util/log.ts";
import { RpcError } from "../../src/protocol/envelope.ts";
import type { VmmDriver, VmmHandles } from "../../src/vmm/types.ts";

const silent = new Logger(() => {}, "error");
const ctx = { log: silent, progress: () => {} };

class FakeNetwork implements HostNetwork {
  taps = new Set<string>();
  failCreateTap = false;
  ensureBridge() {
    return Promise.resolve();
  }
  createTap(name: string) {
    if (this.failCreateTap) {
      return Promise.reject(new Error("tap device busy"));
    }
    this.taps.add(name);
    return Promise.resolve();
  }
  deleteTap(name: string) {
    this.taps.delete(name);
    return Promise.resolve();
  }
  /** Taps with NAT rules, as the helper keys them. */
  nat = new Set<string>();
  natUp(tap: string) {
    this.nat.add(tap);
    return Promise.resolve();
  }
  natDown(tap: string) {
    const had = this.nat.delete(tap);
    return Promise.resolve(had ? 1 : 0);
  }
  routeResolver() {
    return Promise.resolve({ applied: false, commands: [] });
  }
}

/** A VMM that is a pid in a set; every launch gets a new pid. */
class FakeVmm implements VmmDriver {
  readonly name = "qemu";
  alive = new Set<number>();
  launches: { pid: number; vcpu: number; memoryMib: number }[] = [];
  /** Signals sent to this VMM's pids, as "<signal> <pid>". */
  signals: string[] = [];
  #next = 9000;
  launch(spec: Parameters<VmmDriver["launch"]>[0]): Promise<VmmHandles> {
    const pid = this.#next++;
    this.alive.add(pid);
    this.launches.push({ pid, vcpu: spec.vcpu, memoryMib: spec.memoryMib });
    return Promise.resolve({
      vmm: "qemu",
      pid,
      controlSocket: spec.controlSocket,
    });
  }
  isAlive(handles: VmmHandles) {
    return Promise.resolve(this.alive.has(handles.pid));
  }
  terminate(handles: VmmHandles) {
    this.alive.delete(handles.pid);
    return Promise.resolve();
  }
}

/** A guest that boots at once and powers off when asked. */
function fakeGuest(
  vmm: FakeVmm,
  calls: string[],
  closed: string[],
): GuestOps {
  return {
    waitReady(w) {
      w.onBoot?.();
      return Promise.resolve({ ok: true });
    },
    closeConnection(path) {
      if (path) closed.push(path);
      return Promise.resolve();
    },
    powerOff(target) {
      calls.push(`poweroff ${target.name}`);
      // A guest named mute-* never answers ssh.
      if (target.name.startsWith("mute")) return Promise.resolve(false);
      // The guest powering off makes its VMM exit.
      for (const pid of vmm.alive) vmm.alive.delete(pid);
      return Promise.resolve(true);
    },
  };
}

interface Env {
  dir: string;
  db: StateDb;
  net: FakeNetwork;
  vmm: FakeVmm;
  guestCalls: string[];
  /** Shared ssh connections closed, by control path. */
  closedConnections: string[];
  service(failAfterStage?: CreateStage, now?: () => number): VmService;
  vmDirs(): Promise<string[]>;
  close(): Promise<void>;
}

async function setup(): Promise<Env> {
  const dir = await Deno.makeTempDir({ prefix: "banger-vms-test-" });
  const paths = resolvePaths({ root: dir, home: join(dir, "home") });
  await Deno.mkdir(paths.vmsDir, { recursive: true });
  await Deno.mkdir(paths.vmmSocketDir, { recursive: true });
  await Deno.mkdir(join(dir, "image/skel"), { recursive: true });
  await Deno.writeTextFile(join(dir, "image/skel/.bashrc"), "# test\n");
  const rootfs = join(dir, "image/rootfs.ext4");
  await Deno.writeFile(rootfs, new Uint8Array(1024 * 1024));
  await ensureKeyPair(paths.sshKey, "banger-test");
  const image: Image = {
    id: "img",
    name: "debian-bookworm",
    dir: join(dir, "image"),
    rootfs,
    kernel: join(dir, "image/vmlinux"),
    initrd: join(dir, "image/initrd"),
    rootSkeleton: join(dir, "image/skel"),
    kernelRelease: "6.1.0-test",
  };
  const db = new StateDb(paths.dbFile);
  const net = new FakeNetwork();
  const vmm = new FakeVmm();
  const guestCalls: string[] = [];
  const closedConnections: string[] = [];
  const config = parseConfig(
    'default_image_name = "debian-bookworm"\n[vm_defaults]\ndisk_size = "64M"\n',
    { cpus: 8, memoryMib: 16384 },
  );
  return {
    dir,
    db,
    net,
    vmm,
    guestCalls,
    closedConnections,
    service: (failAfterStage?: CreateStage, now?: () => number) =>
      new VmService({
        db,
        paths,
        config,
        images: {
          ensure: () => Promise.resolve(image),
          check: (name) => {
            if (name !== config.defaultImage) {
              throw new RpcError("not_found", `Cannot find image "${name}"`);
            }
          },
        },
        network: net,
        kernels: new KernelService(paths.kernelsDir, `${dir}/import`),
        vmm,
        ssh: { key: paths.sshKey, knownHosts: paths.knownHosts },
        ownerUid: 0,
        log: silent,
        sshTimeoutMs: 1000,
        failAfterStage,
        guest: fakeGuest(vmm, guestCalls, closedConnections),
        stopGraceMs: 200,
        // A signal ends the fake VMM's pid.
        signal: (pid, signal) => {
          vmm.signals.push(`${signal} ${pid}`);
          vmm.alive.delete(pid);
          return Promise.resolve();
        },
        ...(now ? { now } : {}),
      }),
    async vmDirs() {
      const names = [];
      for await (const e of Deno.readDir(paths.vmsDir)) names.push(e.name);
      return names;
    },
    async close() {
      db.close();
      await Deno.remove(dir, { recursive: true });
    },
  };
}

for (const stage of CREATE_STAGES) {
  Deno.test(`create() that fails after stage "${stage}" leaves no row, disk, tap or VMM`, async () => {
    const env = await setup();
    try {
      await assert.rejects(
        env.service(stage).create({ name: "doomed", nat: true }, ctx),
        new RegExp(`Injected failure after stage "${stage}"`),
      );
      assert.deepEqual(env.db.listVms(), []);
      assert.deepEqual(await env.vmDirs(), []);
      assert.deepEqual([...env.net.taps], []);
      assert.deepEqual([...env.net.nat], []);
      assert.deepEqual([...env.vmm.alive], []);
    } finally {
      await env.close();
    }
  });
}

Deno.test("create() with an unknown image or a kernel name that is a path makes nothing", async () => {
  const env = await setup();
  try {
    await assert.rejects(
      env.service().create({ name: "typo", image: "debian-bookwrom" }, ctx),
      /Cannot find image "debian-bookwrom"/,
    );
    await assert.rejects(
      env.service().create({ name: "escape", kernel: "../../etc" }, ctx),
      /Invalid kernel name/,
    );
    assert.deepEqual(env.db.listVms(), []);
    assert.deepEqual(await env.vmDirs().catch(() => []), []);
    assert.equal(env.vmm.launches.length, 0);
  } finally {
    await env.close();
  }
});

Deno.test("create() that cannot make its tap rolls back and says why", async () => {
  const env = await setup();
  try {
    env.net.failCreateTap = true;
    await assert.rejects(
      env.service().create({ name: "no-tap" }, ctx),
      /tap device busy/,
    );
    assert.deepEqual(env.db.listVms(), []);
    assert.deepEqual(await env.vmDirs(), []);
    assert.equal(env.vmm.launches.length, 0);
  } finally {
    await env.close();
  }
});

Deno.test("create() refuses a taken name and an invalid one, creating nothing", async () => {
  const env = await setup();
  try {
    const vms = env.service();
    await vms.create({ name: "taken", start: false }, ctx);
    await assert.rejects(
      vms.create({ name: "taken" }, ctx),
      /Cannot create VM "taken": name is already taken by a stopped VM/,
    );
    await assert.rejects(
      vms.create({ name: "Bad_Name" }, ctx),
      /Invalid VM name "Bad_Name"/,
    );
    // A name equal to another VM's id would hide that VM from id lookups.
    const id = env.db.listVms()[0]!.id;
    await assert.rejects(
      vms.create({ name: id }, ctx),
      new RegExp(`Cannot create VM "${id}": it is the id of VM "taken"`),
    );
    assert.equal(env.db.listVms().length, 1);
  } finally {
    await env.close();
  }
});

Deno.test("four parallel creates get distinct names, addresses and taps", async () => {
  const env = await setup();
  try {
    const vms = env.service();
    const created = await Promise.all(
      [1, 2, 3, 4].map(() => vms.create({}, ctx)),
    );
    const names = new Set(created.map((c) => c.vm.name));
    const ips = new Set(created.map((c) => c.vm.ip));
    const taps = new Set(created.map((c) => c.vm.tap));
    assert.equal(names.size, 4);
    assert.equal(ips.size, 4);
    assert.equal(taps.size, 4);
    assert.deepEqual([...env.net.taps].sort(), [...taps].sort());
    for (const c of created) {
      assert.match(c.vm.name, /^[a-z]+-[a-z]+(-\d+)?$/);
      assert.equal(c.vm.state, "running");
    }
  } finally {
    await env.close();
  }
});

Deno.test("create --no-start makes disks only; start boots them, stop keeps them", async () => {
  const env = await setup();
  try {
    const vms = env.service();
    const { vm } = await vms.create({ name: "later", start: false }, ctx);
    assert.equal(vm.state, "stopped");
    assert.equal(env.vmm.launches.length, 0);
    assert.deepEqual([...env.net.taps], []);
    const work = join(vm.dir, VM_FILES.work);
    const before = (await Deno.stat(work)).ino;
    const hostKey = await Deno.readTextFile(join(vm.dir, VM_FILES.hostKey));

    assert.deepEqual(await vms.start(["later"], ctx), [
      { ref: "later", ok: true },
    ]);
    assert.equal(vms.get("later").state, "running");
    assert.deepEqual([...env.net.taps], [vm.tap]);
    assert.ok(await exists(join(vm.dir, VM_FILES.handles)));

    assert.deepEqual(await vms.stop(["later"], ctx), [
      { ref: "later", ok: true },
    ]);
    assert.deepEqual(env.guestCalls, ["poweroff later"]);
    // The VM's shared ssh connection is closed before its boot (a stale
    // one of the slot's last VM) and when its VMM ends.
    assert.deepEqual(env.closedConnections, [
      join(env.dir, "run/banger/vmm/2.ssh"),
      join(env.dir, "run/banger/vmm/2.ssh"),
    ]);
    const stopped = vms.get("later");
    assert.equal(stopped.state, "stopped");
    assert.equal(stopped.pid, null);
    assert.deepEqual([...env.net.taps], []);
    assert.ok(!(await exists(join(vm.dir, VM_FILES.handles))));

    await vms.start(["later"], ctx);
    assert.equal((await Deno.stat(work)).ino, before, "work disk was remade");
    assert.equal(
      await Deno.readTextFile(join(vm.dir, VM_FILES.hostKey)),
      hostKey,
      "the host key changed across a restart",
    );
    assert.equal(env.vmm.launches.length, 2);
  } finally {
    await env.close();
  }
});

Deno.test("batch operations resolve once, de-duplicate and keep the given order", async () => {
  const env = await setup();
  try {
    const vms = env.service();
    const a = (await vms.create({ name: "alpha", start: false }, ctx)).vm;
    await vms.create({ name: "beta", start: false }, ctx);
    const results = await vms.start(["beta", "ghost", "alpha", a.id], ctx);
    assert.deepEqual(results.map((r) => [r.ref, r.ok]), [
      ["beta", true],
      ["ghost", false],
      ["alpha", true],
      [a.id, true],
    ]);
    assert.match(results[1]!.error!.message, /Cannot find VM "ghost"/);
    assert.equal(results[1]!.error!.code, "not_found");
    // alpha was named twice but booted once.
    assert.equal(env.vmm.launches.length, 2);
    const again = await vms.start(["alpha"], ctx);
    assert.equal(again[0]!.detail, "already running");
  } finally {
    await env.close();
  }
});

Deno.test("kill ends the VMM and cleans up; the VM ends stopped", async () => {
  const env = await setup();
  try {
    const vms = env.service();
    const { vm } = await vms.create({ name: "victim" }, ctx);
    assert.deepEqual(await vms.kill(["victim"], "KILL", ctx), [
      { ref: "victim", ok: true },
    ]);
    // The signal asked for, to the VM's own VMM, and no power-off first.
    assert.deepEqual(env.vmm.signals, [`KILL ${vm.pid}`]);
    assert.ok(!env.guestCalls.includes("poweroff victim"));
    assert.deepEqual([...env.vmm.alive], []);
    const after = vms.get("victim");
    assert.equal(after.state, "stopped");
    assert.equal(after.pid, null);
    assert.deepEqual([...env.net.taps], []);
    assert.ok(!(await exists(join(vm.dir, VM_FILES.handles))));
  } finally {
    await env.close();
  }
});

Deno.test("delete works with a corrupt handles file, from the database mirror", async () => {
  const env = await setup();
  try {
    const vms = env.service();
    const { vm } = await vms.create({ name: "mangled" }, ctx);
    await Deno.writeTextFile(join(vm.dir, VM_FILES.handles), "{not json");
    assert.deepEqual(await vms.delete(["mangled"], silent), [
      { ref: "mangled", ok: true },
    ]);
    assert.deepEqual([...env.vmm.alive], [], "the VMM was not ended");
    assert.deepEqual([...env.net.taps], []);
    assert.deepEqual(env.db.listVms(), []);
    assert.deepEqual(await env.vmDirs(), []);
  } finally {
    await env.close();
  }
});

Deno.test("delete works with the handles file missing", async () => {
  const env = await setup();
  try {
    const vms = env.service();
    const { vm } = await vms.create({ name: "lost" }, ctx);
    await Deno.remove(join(vm.dir, VM_FILES.handles));
    assert.deepEqual(await vms.delete(["lost"], silent), [
      { ref: "lost", ok: true },
    ]);
    assert.deepEqual([...env.vmm.alive], []);
    assert.deepEqual(env.db.listVms(), []);
  } finally {
    await env.close();
  }
});

Deno.test("cleanup runs every step when one fails and reports them joined", async () => {
  const env = await setup();
  try {
    const vms = env.service();
    const { vm } = await vms.create({ name: "stuck" }, ctx);
    env.net.deleteTap = () => Promise.reject(new Error("helper unreachable"));
    const [result] = await vms.delete(["stuck"], silent);
    assert.equal(result!.ok, false);
    assert.match(
      result!.error!.message,
      /Cannot delete VM "stuck" completely: .*delete tap "bgtap2": helper unreachable/,
    );
    // The VMM was still ended and the disks still removed.
    assert.deepEqual([...env.vmm.alive], []);
    assert.ok(!(await exists(vm.dir)));
    assert.equal(vms.get("stuck").state, "error");
    // Once the helper is back, delete finishes.
    env.net.deleteTap = FakeNetwork.prototype.deleteTap.bind(env.net);
    assert.deepEqual(await vms.delete(["stuck"], silent), [
      { ref: "stuck", ok: true },
    ]);
  } finally {
    await env.close();
  }
});

Deno.test("reconcile adopts live VMs and cleans up dead ones", async () => {
  const env = await setup();
  try {
    const first = env.service();
    const live = (await first.create({ name: "live" }, ctx)).vm;
    const dead = (await first.create({ name: "dead" }, ctx)).vm;
    // The daemon dies; one VMM dies with... nothing, the other crashes.
    env.vmm.alive.delete(dead.pid!);
    const second = env.service();
    await second.reconcile(silent);
    const adopted = second.get("live");
    assert.equal(adopted.state, "running");
    assert.equal(adopted.pid, live.pid);
    assert.ok(env.net.taps.has(live.tap));
    const cleaned = second.get("dead");
    assert.equal(cleaned.state, "stopped");
    assert.equal(cleaned.pid, null);
    assert.ok(!env.net.taps.has(dead.tap));
    assert.ok(!(await exists(join(dead.dir, VM_FILES.handles))));
  } finally {
    await env.close();
  }
});

Deno.test("operations on one VM run one at a time", async () => {
  const env = await setup();
  try {
    const vms = env.service();
    await vms.create({ name: "serial", start: false }, ctx);
    const order: string[] = [];
    const launch = env.vmm.launch.bind(env.vmm);
    env.vmm.launch = async (spec) => {
      order.push("launch begins");
      await new Promise((r) => setTimeout(r, 50));
      order.push("launch ends");
      return await launch(spec);
    };
    const net = env.net.deleteTap.bind(env.net);
    env.net.deleteTap = (name) => {
      order.push("stop cleans up");
      return net(name);
    };
    const [started, stopped] = await Promise.all([
      vms.start(["serial"], ctx),
      vms.stop(["serial"], ctx),
    ]);
    assert.ok(started[0]!.ok && stopped[0]!.ok);
    assert.deepEqual(order, ["launch begins", "launch ends", "stop cleans up"]);
    assert.equal(vms.get("serial").state, "stopped");
  } finally {
    await env.close();
  }
});

Deno.test("set changes a stopped VM and refuses a running one", async () => {
  const env = await setup();
  try {
    const vms = env.service();
    await vms.create({ name: "sized" }, ctx);
    await assert.rejects(
      vms.set("sized", { vcpu: 1 }),
      /Cannot change VM "sized": it is running; stop it first/,
    );
    await vms.stop(["sized"], ctx);
    const changed = await vms.set("sized", { vcpu: 1, memoryMib: 1536 });
    assert.equal(changed.vcpu, 1);
    assert.equal(changed.memoryMib, 1536);
    assert.deepEqual(changed.specFrom, {
      vcpu: "flag",
      memory: "flag",
      disk: "config",
    });
    await vms.start(["sized"], ctx);
    assert.deepEqual(env.vmm.launches.at(-1), {
      pid: env.vmm.launches.at(-1)!.pid,
      vcpu: 1,
      memoryMib: 1536,
    });
  } finally {
    await env.close();
  }
});

Deno.test("a created VM records where its sizes came from", async () => {
  const env = await setup();
  try {
    const { vm } = await env.service().create(
      { name: "sourced", vcpu: 3, start: false },
      ctx,
    );
    assert.deepEqual(vm.specFrom, {
      vcpu: "flag",
      memory: "host",
      disk: "config",
    });
    assert.equal(vm.memoryMib, 2048); // 16 GiB host / 8
  } finally {
    await env.close();
  }
});

Deno.test("prune deletes stopped VMs and keeps running ones", async () => {
  const env = await setup();
  try {
    const vms = env.service();
    const up = (await vms.create({ name: "up" }, ctx)).vm;
    const down = (await vms.create({ name: "down", start: false }, ctx)).vm;
    const results = await vms.prune([down.id, up.id], silent);
    assert.deepEqual(results[0], { ref: down.id, ok: true });
    assert.deepEqual(results[1], {
      ref: up.id,
      ok: true,
      detail: "kept: it is running",
    });
    assert.deepEqual(vms.list().map((v) => v.name), ["up"]);
  } finally {
    await env.close();
  }
});

Deno.test("stopIfIdle() stops a VM only once it has been idle long enough", async () => {
  const env = await setup();
  try {
    let now = Date.parse("2030-01-01T00:00:00Z");
    const vms = env.service(undefined, () => now);
    const { vm } = await vms.create({ name: "dozy" }, ctx);
    now += 30_000;
    assert.equal(await vms.stopIfIdle(vm.id, 60_000, silent), false);
    vms.touch("dozy");
    now += 45_000;
    assert.equal(
      await vms.stopIfIdle(vm.id, 60_000, silent),
      false,
      "stopped 45 s after activity",
    );
    now += 20_000;
    assert.equal(await vms.stopIfIdle(vm.id, 60_000, silent), true);
    assert.equal(vms.get("dozy").state, "stopped");
    assert.deepEqual(env.guestCalls, ["poweroff dozy"]);
    assert.equal(await vms.stopIfIdle(vm.id, 60_000, silent), false);
  } finally {
    await env.close();
  }
});

async function exists(path: string): Promise<boolean> {
  return await Deno.lstat(path).then(() => true, () => false);
}

Deno.test("a --nat VM has NAT rules only while it runs, also across a daemon restart", async () => {
  const env = await setup();
  try {
    const vms = env.service();
    const { vm } = await vms.create({ name: "outbound", nat: true }, ctx);
    assert.deepEqual([...env.net.nat], [vm.tap]);
    await vms.stop(["outbound"], ctx);
    assert.deepEqual([...env.net.nat], []);
    await vms.start(["outbound"], ctx);
    assert.deepEqual([...env.net.nat], [vm.tap]);
    // A daemon crash that lost the rules: reconcile puts them back.
    env.net.nat.clear();
    await env.service().reconcile(silent);
    assert.deepEqual([...env.net.nat], [vm.tap]);
    // A VM without --nat never gets rules.
    await vms.create({ name: "inward" }, ctx);
    assert.deepEqual([...env.net.nat], [vm.tap]);
    await vms.delete(["outbound"], silent);
    assert.deepEqual([...env.net.nat], []);
  } finally {
    await env.close();
  }
});

Deno.test("stop() of a guest that does not answer ssh ends its VMM and says it could not sync", async () => {
  const env = await setup();
  try {
    const vms = env.service();
    await vms.create({ name: "mute-vm" }, ctx);
    const [result] = await vms.stop(["mute-vm"], ctx);
    assert.equal(result?.ok, true);
    assert.match(result?.detail ?? "", /^stopped without a sync: /);
    assert.equal(vms.get("mute-vm").state, "stopped");
    assert.equal(env.vmm.alive.size, 0);
  } finally {
    await env.close();
  }
});
