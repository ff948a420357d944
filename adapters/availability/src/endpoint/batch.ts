import { AdapterEndpoint } from '@chainlink/external-adapter-framework/adapter'
import { HttpTransport } from '@chainlink/external-adapter-framework/transports'
import { InputParameters } from '@chainlink/external-adapter-framework/validation'
import { AdapterInputError } from '@chainlink/external-adapter-framework/validation/error'
import { config } from '../config'
import { providerError, ServeError } from './errors'

export const inputParameters = new InputParameters(
  {
    batch: {
      required: true,
      type: 'number',
      description: 'The settlement batch number',
    },
  },
  [{ batch: 1 }],
)

// The manifest `meterroot serve` answers at /batches/{batch} (the fields the adapter passes on).
interface Manifest {
  batch: number
  root: string
  total: string
  leaf_count: number
  epochs: number[]
  tariff_hash: string
}

export type BatchTypes = {
  Parameters: typeof inputParameters.definition
  Response: {
    Result: string
    Data: { result: string; batch: number; total: string; leafCount: number; epochs: number[]; tariffHash: string }
  }
  Settings: typeof config.settings
  Provider: { RequestBody: never; ResponseBody: Manifest | ServeError }
}

export const batchTransport = new HttpTransport<BatchTypes>({
  prepareRequests: (params, settings) =>
    params.map((param) => ({
      params: [param],
      request: { baseURL: settings.API_ENDPOINT, url: `/batches/${param.batch}`, validateStatus: (s: number) => s < 500 },
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
          result: body.root,
          data: {
            result: body.root,
            batch: body.batch,
            total: body.total,
            leafCount: body.leaf_count,
            epochs: body.epochs,
            tariffHash: body.tariff_hash,
          },
        },
      }
    }),
})

export const batch = new AdapterEndpoint({
  name: 'batch',
  transport: batchTransport,
  inputParameters,
  customInputValidation: (req) => {
    const { batch: number } = req.requestContext.data
    if (!Number.isSafeInteger(number) || number < 1) {
      return new AdapterInputError({ message: `batch ${number} must be a positive integer`, statusCode: 400 })
    }
    return undefined
  },
})
