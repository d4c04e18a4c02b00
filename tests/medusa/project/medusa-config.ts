/**
 * The Medusa of Groupwire's Medusa tests and benchmarks: a plain 2.21.2 server, no admin
 * dashboard, its event bus on Redis (BullMQ queue "events-queue", key prefix
 * "RedisEventBusService"). Everything that differs between runs comes from the environment,
 * set by tests/medusa/harness.py.
 */
import { defineConfig, loadEnv, Modules } from "@medusajs/framework/utils"

loadEnv(process.env.NODE_ENV || "development", process.cwd())

const redisUrl = process.env.REDIS_URL

module.exports = defineConfig({
  admin: { disable: true },
  projectConfig: {
    databaseUrl: process.env.DATABASE_URL,
    redisUrl,
    http: {
      storeCors: process.env.STORE_CORS || "http://localhost:8000",
      adminCors: process.env.ADMIN_CORS || "http://localhost:9000",
      authCors: process.env.AUTH_CORS || "http://localhost:9000",
      jwtSecret: process.env.JWT_SECRET || "harness-jwt-secret",
      cookieSecret: process.env.COOKIE_SECRET || "harness-cookie-secret",
    },
  },
  modules: [
    {
      resolve: "@medusajs/medusa/event-bus-redis",
      key: Modules.EVENT_BUS,
      options: { redisUrl },
    },
  ],
})
