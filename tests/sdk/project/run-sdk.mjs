// Drives every method of @medusajs/js-sdk's `admin.customer` and `admin.customerGroup`,
// unmodified, against a server speaking Medusa's Admin API (Groupwire or Medusa itself),
// and prints one JSON report on stdout.
//
//   node run-sdk.mjs BASE_URL SECRET_API_KEY [TAG]
//
// TAG (default: random) makes names and emails unique, so the script can run against a
// database that already holds data. Each step of the report is
//   {"name", "call", "ok": true, "result"}                          (the SDK's resolved value)
//   {"name", "call", "ok": false, "error": {"class", "status", "statusText", "message"}}
// A step that fails does not stop the run: later steps use what earlier ones returned.
// The report also lists the methods the SDK's classes have and those the script called, so
// that a method added to the SDK shows up as not driven.

import Medusa, { FetchError } from "@medusajs/js-sdk";
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { pathToFileURL } from "node:url";

const [baseUrl, apiKey, tagArgument] = process.argv.slice(2);
if (!baseUrl || !apiKey) {
  console.error("usage: node run-sdk.mjs BASE_URL SECRET_API_KEY [TAG]");
  process.exit(2);
}
const tag = tagArgument || Math.random().toString(36).slice(2, 10);

// How a Medusa admin authenticates a server-side script with a secret key in 2.21.2: the
// SDK sends `Authorization: Basic base64(apiKey + ":")` on every request.
const sdk = new Medusa({ baseUrl, apiKey });

const steps = [];
const called = { customer: new Set(), customerGroup: new Set() };

async function step(name, resource, method, ...args) {
  called[resource].add(method);
  const call = `admin.${resource}.${method}`;
  try {
    const result = await sdk.admin[resource][method](...args);
    steps.push({ name, call, ok: true, result });
    return result;
  } catch (error) {
    steps.push({
      name,
      call,
      ok: false,
      error: {
        class: error instanceof FetchError ? "FetchError" : error?.constructor?.name ?? "unknown",
        status: error?.status ?? null,
        statusText: error?.statusText ?? null,
        message: String(error?.message ?? error),
      },
    });
    return undefined;
  }
}

const email = (who) => `${who}-${tag}@example.com`;

// --- customer groups -------------------------------------------------------------------
const vip = (
  await step(
    "group_create_vip",
    "customerGroup",
    "create",
    { name: `VIP ${tag}`, metadata: { tier: "gold" } },
    { fields: "id,name,metadata,created_at,updated_at" },
  )
)?.customer_group;
const wholesale = (
  await step("group_create_wholesale", "customerGroup", "create", { name: `Wholesale ${tag}` })
)?.customer_group;
await step(
  "group_update",
  "customerGroup",
  "update",
  vip?.id,
  { name: `VIP+ ${tag}`, metadata: { region: "eu" } },
  { fields: "id,name,metadata" },
);
await step("group_retrieve", "customerGroup", "retrieve", vip?.id, { fields: "+metadata" });

// --- customers -------------------------------------------------------------------------
const ann = (
  await step(
    "customer_create_ann",
    "customer",
    "create",
    {
      email: email("ann"),
      first_name: "Ann",
      last_name: "Lee",
      company_name: "Acme",
      phone: "+4512345678",
      metadata: { source: "sdk" },
    },
    { fields: "*groups" },
  )
)?.customer;
const bob = (
  await step("customer_create_bob", "customer", "create", { email: email("bob"), first_name: "Bob" })
)?.customer;
await step(
  "customer_update",
  "customer",
  "update",
  ann?.id,
  { last_name: "Lee-Smith", metadata: { vip: true } },
  { fields: "id,email,first_name,last_name,metadata" },
);
await step("customer_retrieve", "customer", "retrieve", ann?.id, { fields: "+metadata" });

// --- memberships -----------------------------------------------------------------------
await step(
  "group_batch_add_customers",
  "customerGroup",
  "batchCustomers",
  vip?.id,
  { add: [ann?.id, bob?.id] },
);
await step(
  "customer_batch_groups",
  "customer",
  "batchCustomerGroups",
  bob?.id,
  { add: [wholesale?.id], remove: [vip?.id] },
);
await step("group_retrieve_customers", "customerGroup", "retrieve", vip?.id, {
  fields: "id,name,*customers",
});
await step("customer_retrieve_groups", "customer", "retrieve", bob?.id, {
  fields: "id,email,*groups",
});
await step("group_list", "customerGroup", "list", {
  id: [vip?.id, wholesale?.id],
  fields: "id,name,customers.id",
  order: "name",
  limit: 10,
  offset: 0,
});
await step("group_list_by_customer", "customerGroup", "list", {
  customers: [ann?.id],
  fields: "id,name",
});
await step("customer_list", "customer", "list", {
  id: [ann?.id, bob?.id],
  fields: "id,email,*groups",
  order: "email",
  limit: 10,
  offset: 0,
});
await step("customer_list_by_group", "customer", "list", {
  groups: [wholesale?.id],
  fields: "id,email",
});
await step("customer_list_q", "customer", "list", { q: `ann-${tag}`, limit: 5 });

// --- addresses -------------------------------------------------------------------------
const home = {
  address_name: "Home",
  first_name: "Ann",
  last_name: "Lee",
  address_1: "Main Street 1",
  city: "Copenhagen",
  country_code: "dk",
  postal_code: "1000",
  phone: "+4512345678",
  is_default_shipping: true,
  is_default_billing: true,
  metadata: { floor: "2" },
};
await step("address_create_home", "customer", "createAddress", ann?.id, home);
await step("address_create_office", "customer", "createAddress", ann?.id, {
  address_name: "Office",
  company: "Acme",
  address_1: "Harbour 9",
  city: "Aarhus",
  country_code: "dk",
  postal_code: "8000",
  is_default_shipping: true,
});
const listed = (await step("address_list", "customer", "listAddresses", ann?.id))?.addresses ?? [];
const homeId = listed.find((address) => address.address_name === "Home")?.id;
const officeId = listed.find((address) => address.address_name === "Office")?.id;
await step("address_retrieve", "customer", "retrieveAddress", ann?.id, officeId);
await step("address_update", "customer", "updateAddress", ann?.id, homeId, {
  city: "Odense",
  postal_code: "5000",
  is_default_shipping: true,
});
await step("customer_retrieve_addresses", "customer", "retrieve", ann?.id, {
  fields: "id,*addresses",
});
await step("address_delete", "customer", "deleteAddress", ann?.id, officeId);
await step("address_list_after_delete", "customer", "listAddresses", ann?.id);

// --- errors ----------------------------------------------------------------------------
await step("error_group_unknown", "customerGroup", "retrieve", "cusgroup_unknown");
await step("error_customer_unknown", "customer", "retrieve", "cus_unknown");
await step("error_group_create_without_name", "customerGroup", "create", {});
await step("error_address_unknown", "customer", "retrieveAddress", ann?.id, "cuaddr_unknown");

// --- deletes ---------------------------------------------------------------------------
await step("group_delete", "customerGroup", "delete", wholesale?.id);
await step("customer_delete", "customer", "delete", bob?.id);
await step("error_group_retrieve_deleted", "customerGroup", "retrieve", wholesale?.id);
await step("error_customer_retrieve_deleted", "customer", "retrieve", bob?.id);
await step("customer_retrieve_after_deletes", "customer", "retrieve", ann?.id, {
  fields: "id,*groups",
});

const require = createRequire(import.meta.url);
// The package's exports hide its package.json: read it next to the CommonJS entry (dist/).
const sdkPackage = JSON.parse(
  readFileSync(new URL("../package.json", pathToFileURL(require.resolve("@medusajs/js-sdk")))),
);
const methods = (object) =>
  Object.getOwnPropertyNames(Object.getPrototypeOf(object)).filter((n) => n !== "constructor");

process.stdout.write(
  JSON.stringify(
    {
      sdk_version: sdkPackage.version,
      tag,
      ids: { vip: vip?.id, wholesale: wholesale?.id, ann: ann?.id, bob: bob?.id, homeId, officeId },
      methods: {
        customer: methods(sdk.admin.customer),
        customerGroup: methods(sdk.admin.customerGroup),
      },
      called: { customer: [...called.customer], customerGroup: [...called.customerGroup] },
      steps,
    },
    null,
    2,
  ) + "\n",
);
