// A client generated from hookd's OpenAPI document, used as a new user would: every call below
// must type-check under --strict with nothing cast, and succeed against a live hookd.
import createClient from "openapi-fetch";
import type { paths } from "./schema.js";

function need(name: string): string {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
}

function check(what: string, ok: boolean, detail: unknown): void {
  if (!ok) throw new Error(`${what}: ${JSON.stringify(detail)}`);
  console.log(`ok  ${what}`);
}

const base = need("HOOKD_URL");
const receiver = need("RECEIVER_URL");
const operator = createClient<paths>({
  baseUrl: base,
  headers: { Authorization: `Bearer ${need("HOOKD_OPERATOR")}` },
});

const tenant = await operator.POST("/v1/tenants", { body: { name: "ts-client" } });
check("create a tenant", tenant.data !== undefined, tenant.error);
const tenantId: string = tenant.data!.id;
const key = await operator.POST("/v1/tenants/{id}/keys", {
  params: { path: { id: tenantId } },
  body: { name: "ts", role: "admin" },
});
check("create an admin key", key.data !== undefined, key.error);
const api = createClient<paths>({
  baseUrl: base,
  headers: { Authorization: `Bearer ${key.data!.key}` },
});

const created = await api.POST("/v1/endpoints", {
  body: { name: "ts endpoint", url: receiver, events: ["order.*"] },
});
check("create an endpoint", created.data !== undefined, created.error);
const endpoint = created.data!;
// The create answer always carries the secret: a string, not `string | undefined`.
const secret: string = endpoint.secret;
check("the secret is shown once", secret.startsWith("whsec_"), secret);

const tested = await api.POST("/v1/endpoints/{id}/test", {
  params: { path: { id: endpoint.id } },
});
check("send a test", tested.data?.delivered === true, tested.data ?? tested.error);
const testError: string | null | undefined = tested.data!.errorMessage;
const testBody: string | null | undefined = tested.data!.responseBody;
check("the test answer types its error and body", testError == null, { testError, testBody });

const published = await api.POST("/v1/events", {
  body: { type: "order.paid", data: { orderId: 42 }, idempotencyKey: "ts-1" },
});
check("publish", published.data !== undefined, published.error);

const rotated = await api.POST("/v1/endpoints/{id}/secret/rotate", {
  params: { path: { id: endpoint.id } },
  body: { gracePeriod: "1h" },
});
check("rotate with a grace period", rotated.data !== undefined, rotated.error);
const expires: string = rotated.data!.oldSecretExpiresAt;
check("the old secret's expiry", Date.parse(expires) > Date.now(), expires);

const page = await api.GET("/v1/endpoints", { params: { query: { page: 0, size: 10 } } });
check("page endpoints", page.data?.totalElements === 1, page.data ?? page.error);

const stats = await api.GET("/v1/endpoints/{id}/stats", {
  params: { path: { id: endpoint.id } },
});
check("read stats", stats.data !== undefined, stats.error);
