"""meterroot's two ends of the market (SPEC §13).

    meterroot.sdk      the consumer SDK: a wallet signs in to a provider's gateway, meters what
                       the gateway reports, prices it with the settlement core and signs
                       SpendPermits for every payee it owes
    meterroot.gateway  the provider gateway: a metering reverse proxy that writes usage files

Neither imports Beam. Heavy modules load on first use.
"""
