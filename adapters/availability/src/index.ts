// The meterroot availability External Adapter: Chainlink's EA framework (v3) over `meterroot serve`.
//
//   {"id": "<job run>", "data": {"endpoint": "availability", "provider": "0x…", "epoch": 498754}}
//   -> {"jobRunID": "<job run>", "data": {"result": 9950, …}, "result": 9950, "statusCode": 200}
//
// The framework caches each answer (CACHE_MAX_AGE) and keeps it warm in the background, and rate
// limits the requests to serve (RATE_LIMIT_CAPACITY_SECOND). It does not echo the node's job
// run id, which a Chainlink node's bridge task expects back as `jobRunID`: an onSend hook adds it.
import { start } from '@chainlink/external-adapter-framework'
import { Adapter } from '@chainlink/external-adapter-framework/adapter'
import { config } from './config'
import { availability } from './endpoint/availability'
import { batch } from './endpoint/batch'

export const adapter = new Adapter({
  name: 'METERROOT_AVAILABILITY',
  defaultEndpoint: availability.name,
  config,
  endpoints: [availability, batch],
  // requests to `meterroot serve`, shared by every subscribed request the framework keeps warm
  rateLimiting: { tiers: { default: { rateLimit1s: 10 } } },
})

function withJobRunId(body: unknown, id: unknown): unknown {
  if (typeof body !== 'string' || id === undefined) return body
  try {
    const parsed = JSON.parse(body)
    if (parsed && typeof parsed === 'object' && !Array.isArray(parsed)) {
      return JSON.stringify({ jobRunID: String(id), ...parsed })
    }
  } catch {
    // not JSON: leave it as it is
  }
  return body
}

export async function serve(): Promise<void> {
  const { api } = await start(adapter)
  if (!api) throw new Error('EA_MODE has no REST API (use reader or reader-writer)')
  api.addHook('onSend', async (request, _reply, payload) => {
    const body = request.body as { id?: unknown } | undefined
    return withJobRunId(payload, body?.id)
  })
  const settings = adapter.config.settings
  await api.listen({ port: settings.EA_PORT, host: settings.EA_HOST })
  const address = api.server.address()
  const port = typeof address === 'object' && address ? address.port : settings.EA_PORT
  process.stdout.write(`meterroot availability adapter listening on http://${settings.EA_HOST}:${port}\n`)
}

if (require.main === module) {
  serve().catch((err) => {
    process.stderr.write(`meterroot availability adapter: ${err instanceof Error ? err.message : err}\n`)
    process.exit(1)
  })
}
