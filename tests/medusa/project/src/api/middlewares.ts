/**
 * Medusa rejects JSON bodies over 100 kB with 413 (about 3,000 ids in one batch). The batch
 * membership routes accept up to 5 MB here, so that large batches can be compared with
 * Groupwire's.
 */
import { defineMiddlewares } from "@medusajs/framework/http"

const largeJson = { sizeLimit: "5mb" }

export default defineMiddlewares({
  routes: [
    {
      matcher: "/admin/customer-groups/:id/customers",
      method: ["POST"],
      bodyParser: largeJson,
    },
    {
      matcher: "/admin/customers/:id/customer-groups",
      method: ["POST"],
      bodyParser: largeJson,
    },
  ],
})
