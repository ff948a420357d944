import { AdapterEndpoint } from '@chainlink/external-adapter-framework/adapter'
import { HttpTransport } from '@chainlink/external-adapter-framework/transports'
import { InputParameters } from '@chainlink/external-adapter-framework/validation'
import { config } from '../config'
import { AdapterInputError } from '@chainlink/external-adapter-framework/validation/error'
import { providerError, ServeError } from './errors'

export const inputParameters = new InputParameters(
  {
    provider: {
      required: true,
      type: 'string',
      description: 'The provider (0x address) whose availability is asked for',
    },
    epoch: {
      required: true,
      type: 'number',
      description: 'The epoch number (SPEC §2: floor(timestamp / epoch_seconds))',
    },
  },
  [{ provider: '0x1000000000000000000000000000000000000001', epoch: 498754 }],
)

// What `meterroot serve` answers at /availability/{provider}/{epoch}.
interface AvailabilityRow {
  provider: string
  epoch: number
  availability_bps: number
  probes: number
  ok_probes: number
  latency_p50_ms: number | null
  latency_p99_ms: number | null
  probers: number
  batch: number
}

export type AvailabilityTypes = {
  Parameters: typeof inputParameters.definition
  Response: {
    Result: number
    Data: {
      result: number
      provider: string
      epoch: number
      probes: number
      okProbes: number
      latencyP50Ms: number | null
      latencyP99Ms: number | null
      batch: number
    }
  }
  Settings: typeof config.settings
  Provider: { RequestBody: never; ResponseBody: AvailabilityRow | ServeError }
}

const ADDRESS = /^0x[0-9a-fA-F]{40}$/

export const availabilityTransport = new HttpTransport<AvailabilityTypes>({
  prepareRequests: (params, settings) =>
    params.map((param) => ({
      params: [param],
      request: {
        baseURL: settings.API_ENDPOINT,
        url: `/availability/${encodeURIComponent(param.provider)}/${param.epoch}`,
        // serve's 404 (no probe of that provider and epoch) is an answer, not a transport failure
        validateStatus: (status: number) => status < 500,
      },
    })),
  parseResponse: (params, response) =>
    params.map((param) => {
      const body = response.data
      if (response.status !== 200 || 'error' in body) {
        return providerError(param, response.status, body as ServeError)
      }
      return {
        params: param,
        response: {
          result: body.availability_bps,
          data: {
            result: body.availability_bps,
            provider: body.provider,
            epoch: body.epoch,
            probes: body.probes,
            okProbes: body.ok_probes,
            latencyP50Ms: body.latency_p50_ms,
            latencyP99Ms: body.latency_p99_ms,
            batch: body.batch,
          },
        },
      }
    }),
})

export const availability = new AdapterEndpoint({
  name: 'availability',
  transport: availabilityTransport,
  inputParameters,
  customInputValidation: (req) => {
    const { provider, epoch } = req.requestContext.data
    if (!ADDRESS.test(provider)) {
      return inputError(`provider ${JSON.stringify(provider)} must be 0x followed by 40 hex digits`)
    }
    if (!Number.isSafeInteger(epoch) || epoch < 0) {
      return inputError(`epoch ${epoch} must be a non-negative integer`)
    }
    return undefined
  },
})


function inputError(message: string): AdapterInputError {
  return new AdapterInputError({ message, statusCode: 400 })
}
