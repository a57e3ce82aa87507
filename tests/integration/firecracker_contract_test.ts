/**
 * The committed Firecracker contract is exactly what the published schema
 * says, whenever that schema is at hand (`BANGER_FC_SCHEMA`, or a
 * `shared/reference/` folder above the checkout).
 */
import assert from "node:assert/strict";
import {
  extractContract,
  findSwaggerFile,
  loadContract,
  SWAGGER_FILE,
} from "../firecracker_standin/contract.ts";

const swagger = findSwaggerFile();

Deno.test("the committed contract covers the routes and bodies banger sends", () => {
  const contract = loadContract();
  assert.equal(contract.source, SWAGGER_FILE);
  const routes = contract.routes.map((r) => `${r.method} ${r.template}`);
  for (
    const route of [
      "PUT /machine-config",
      "PUT /boot-source",
      "PUT /drives/{drive_id}",
      "PUT /network-interfaces/{iface_id}",
      "PUT /logger",
      "PUT /metrics",
      "PUT /actions",
    ]
  ) {
    assert.ok(routes.includes(route), `${route} is missing`);
  }
  const drive = contract.definitions.Drive as { required: string[] };
  assert.deepEqual([...drive.required].sort(), ["drive_id", "is_root_device"]);
});

Deno.test({
  name: "the committed contract equals a fresh extraction of the schema",
  ignore: swagger === undefined,
  fn() {
    const fresh = extractContract(
      Deno.readTextFileSync(swagger!),
      SWAGGER_FILE,
    );
    assert.deepEqual(loadContract(), fresh);
  },
});
