// A Node backend personalizing what it renders for a person through OpenFeature's server
// SDK and its OFREP provider: each evaluation is one call to the Worker with the person's
// context (dynamic context). The person's journey token goes in `X-MM-Token`; the new one
// comes back in the evaluation's metadata for the backend to hand back to the app.
import { OpenFeature } from "@openfeature/server-sdk";
import { OFREPProvider } from "@openfeature/ofrep-provider";

/**
 * A client evaluating slots for the person whose request is being served: `person()`
 * gives that request's `{ token, headers }` (in a real server, from AsyncLocalStorage).
 * Forward the person's `User-Agent` in `headers`, or name `device.type` in the context:
 * a request from an HTTP library is otherwise served as a crawler's, and counts no
 * exposure.
 */
export async function serverClient({ baseUrl, person, domain = "micromoment-server" }) {
  const provider = new OFREPProvider({
    baseUrl,
    headersFactory: async () => {
      const { token, headers = [] } = await person();
      return token ? [...headers, ["X-MM-Token", token]] : headers;
    },
  });
  await OpenFeature.setProviderAndWait(domain, provider);
  return OpenFeature.getClient(domain);
}
