// `meterroot serve` answers a bad parameter with 400 and what it does not hold with 404, as
// {"error": {"status", "message"}}; the adapter passes both on in the framework's error shape.
export interface ServeError {
  error: { status: number; message: string }
}

export function providerError<P>(param: P, status: number, body: ServeError | undefined) {
  const message = body?.error?.message ?? `meterroot serve answered HTTP ${status}`
  return {
    params: param,
    response: {
      errorMessage: message,
      statusCode: status === 404 ? 404 : status === 400 ? 400 : 502,
    },
  }
}
