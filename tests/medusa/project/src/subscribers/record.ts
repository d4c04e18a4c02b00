/**
 * Records every event Medusa's event bus hands to it: one JSON line `{name, data, metadata}`
 * appended to the file named by MEDUSA_RECORDED_EVENTS (tests read it back).
 *
 * It listens to the events Groupwire emits by default. MEDUSA_RECORD_EVENTS (comma-separated)
 * replaces that list; "*" is accepted by Medusa 2.21.2 and means every event, including the
 * internal ones Medusa would otherwise not even enqueue (which changes Medusa's own work,
 * hence not the default).
 */
import { appendFileSync } from "node:fs"
import type { SubscriberArgs, SubscriberConfig } from "@medusajs/framework"

const GROUPWIRE_EVENTS = [
  "customer_group.created",
  "customer_group.updated",
  "customer_group.metadata_updated",
  "customer_group.deleted",
  "customer_group.customer_added",
  "customer_group.customer_removed",
  "customer.created",
  "customer.updated",
  "customer.deleted",
]

const chosen = (process.env.MEDUSA_RECORD_EVENTS || "")
  .split(",")
  .map((name) => name.trim())
  .filter((name) => name.length > 0)

export default async function recordEvent({ event }: SubscriberArgs<unknown>): Promise<void> {
  const path = process.env.MEDUSA_RECORDED_EVENTS
  if (!path) {
    throw new Error("MEDUSA_RECORDED_EVENTS names no file to record events to")
  }
  const line = JSON.stringify({ name: event.name, data: event.data, metadata: event.metadata })
  appendFileSync(path, line + "\n")
}

export const config: SubscriberConfig = {
  event: chosen.length > 0 ? chosen : GROUPWIRE_EVENTS,
}
