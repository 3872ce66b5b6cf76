"""GET coaps://HOST:PORT/x with aiocoap over tinydtls (DTLSSocket), PSK mode.

Usage: tinydtls_client.py URI IDENTITY KEY_HEX
Prints the response code and payload; exits 0 on 2.05, 1 otherwise.
Run by harness/dtls/tests/endpoints/interop_tinydtls.rs.
"""

import asyncio
import sys

import aiocoap


async def main(uri, identity, key_hex):
    ctx = await aiocoap.Context.create_client_context()
    ctx.client_credentials.load_from_dict(
        {
            uri: {
                "dtls": {
                    "psk": {"hex": key_hex},
                    "client-identity": {"ascii": identity},
                }
            }
        }
    )
    try:
        response = await asyncio.wait_for(
            ctx.request(aiocoap.Message(code=aiocoap.GET, uri=uri)).response, 15
        )
    except Exception as e:  # noqa: BLE001 - report any failure to the test
        print(f"request failed: {type(e).__name__}: {e}")
        return 1
    finally:
        await ctx.shutdown()
    print(f"code={response.code} payload={response.payload.decode(errors='replace')}")
    return 0 if response.code == aiocoap.CONTENT else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main(*sys.argv[1:4])))
