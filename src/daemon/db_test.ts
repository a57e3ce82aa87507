import { deepStrictEqual, throws } from "node:assert/strict";
import { StateDb, type VmRow } from "./db.ts";

function row(overrides: Partial<VmRow> = {}): VmRow {
  return {
    id: "aaaaaaaaaaaa",
    name: "calm-otter",
    state: "creating",
    image: "debian-bookworm",
    vmm: "qemu",
    ip: "172.30.0.2",
    tap: "bgtap2",
    vcpu: 2,
    memory_mib: 1024,
    disk_mib: 8192,
    pid: null,
    workspace: null,
    nat: 0,
    created_at: "2026-01-01T00:00:00.000Z",
    updated_at: "2026-01-01T00:00:00.000Z",
    ...overrides,
  };
}

Deno.test("StateDb applies migrations once and records them", async () => {
  const dir = await Deno.makeTempDir();
  const first = new StateDb(`${dir}/state.db`);
  const version = first.version;
  first.close();
  const again = new StateDb(`${dir}/state.db`);
  deepStrictEqual(again.version, version);
  const rows = again.db.prepare("SELECT version FROM schema_migrations").all();
  deepStrictEqual(rows.length, version);
  again.close();
  await Deno.remove(dir, { recursive: true });
});

Deno.test("StateDb keeps names, addresses and taps unique", async () => {
  const dir = await Deno.makeTempDir();
  const db = new StateDb(`${dir}/state.db`);
  db.insertVm(row());
  throws(
    () => db.insertVm(row({ id: "b", ip: "172.30.0.3", tap: "bgtap3" })),
    /UNIQUE/,
  );
  throws(
    () => db.insertVm(row({ id: "c", name: "other", tap: "bgtap3" })),
    /UNIQUE/,
  );
  db.updateVm("aaaaaaaaaaaa", { state: "running", pid: 42 });
  deepStrictEqual(db.vmByName("calm-otter")?.pid, 42);
  deepStrictEqual(db.vmByName("calm-otter")?.state, "running");
  db.deleteVm("aaaaaaaaaaaa");
  deepStrictEqual(db.listVms(), []);
  db.close();
  await Deno.remove(dir, { recursive: true });
});

Deno.test("StateDb.transaction() rolls back when the body throws", async () => {
  const dir = await Deno.makeTempDir();
  const db = new StateDb(`${dir}/state.db`);
  throws(() =>
    db.transaction(() => {
      db.insertVm(row());
      throw new Error("boom");
    }), /boom/);
  deepStrictEqual(db.listVms(), []);
  db.close();
  await Deno.remove(dir, { recursive: true });
});
