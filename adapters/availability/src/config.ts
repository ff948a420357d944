import { AdapterConfig } from '@chainlink/external-adapter-framework/config'

// The adapter's own settings (environment variables); the framework's own (EA_PORT, EA_HOST,
// CACHE_MAX_AGE, RATE_LIMIT_CAPACITY_SECOND, ...) come beside them.
export const config = new AdapterConfig({
  API_ENDPOINT: {
    description: 'Base URL of `meterroot serve` (the data provider), e.g. http://127.0.0.1:8700',
    type: 'string',
    required: true,
    sensitive: false,
  },
})
