"""Spend permit throughput: sign and verify off chain (settlement/permits.py); prints figures."""
import time
from eth_account import Account
from settlement.permits import sign_permit, verify_permit
reg = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
acct = Account.from_key(b"\x01" * 32)
n = 2000
t = time.perf_counter(); ps = [sign_permit(acct.key, 31337, reg, acct.address, acct.address, i) for i in range(n)]; s = time.perf_counter() - t
t = time.perf_counter(); [verify_permit(p, 31337, reg) for p in ps]; v = time.perf_counter() - t
print(f"sign {n/s:.0f}/s, verify {n/v:.0f}/s")
