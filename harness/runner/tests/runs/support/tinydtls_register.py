"""Register with an LwM2M server over coaps using aiocoap on tinydtls (DTLSSocket).

Usage: tinydtls_register.py HOST PORT ENDPOINT IDENTITY KEY_HEX
tinydtls is the DTLS library much meter firmware and Wakaama use; it offers
only TLS_PSK_WITH_AES_128_CCM_8. Prints the response code and Location-Path;
exits 0 on 2.01 Created. Run by harness/runner/tests/interop.rs.
"""

import asyncio
import sys

import aiocoap


async def main(host, port, endpoint, identity, key_hex):
    base = f"coaps://{host}:{port}/"
    ctx = await aiocoap.Context.create_client_context()
    ctx.client_credentials.load_from_dict(
        {base + "*": {"dtls": {"psk": {"hex": key_hex}, "client-identity": {"ascii": identity}}}}
    )
    uri = f"{base}rd?ep={endpoint}&lt=60&lwm2m=1.1&b=U"
    request = aiocoap.Message(code=aiocoap.POST, uri=uri, payload=b"</1/0>,</3/0>")
    request.opt.content_format = 40
    try:
        response = await asyncio.wait_for(ctx.request(request).response, 20)
    except Exception as e:  # noqa: BLE001 - the test reports any failure
        print(f"request failed: {type(e).__name__}: {e}")
        return 1
    finally:
        await ctx.shutdown()
    print(f"code={response.code} location={'/'.join(response.opt.location_path)}")
    return 0 if response.code == aiocoap.CREATED else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main(*sys.argv[1:6])))
