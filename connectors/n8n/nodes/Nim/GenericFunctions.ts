import type {
	IDataObject,
	IExecuteFunctions,
	IHookFunctions,
	IHttpRequestMethods,
	IHttpRequestOptions,
	INodeProperties,
	JsonObject,
} from 'n8n-workflow';
import { NodeApiError } from 'n8n-workflow';

type Context = IExecuteFunctions | IHookFunctions;

export const authenticationProperty: INodeProperties = {
	displayName: 'Authentication',
	name: 'authentication',
	type: 'options',
	options: [
		{ name: 'OAuth2', value: 'oAuth2' },
		{ name: 'API Key', value: 'apiKey' },
	],
	default: 'oAuth2',
};

export const credentialsDescription = [
	{ name: 'nimOAuth2Api', required: true, displayOptions: { show: { authentication: ['oAuth2'] } } },
	{ name: 'nimApi', required: true, displayOptions: { show: { authentication: ['apiKey'] } } },
];

function credentialType(context: Context): string {
	return context.getNodeParameter('authentication', 0) === 'apiKey' ? 'nimApi' : 'nimOAuth2Api';
}

// One request to the Nim API with the node's credential; n8n adds the token (and refreshes it after a 401).
// `missingOk`: a 404 answers undefined instead of failing.
export async function nimApiRequest(
	this: Context,
	method: IHttpRequestMethods,
	path: string,
	body?: IDataObject,
	qs?: IDataObject,
	missingOk = false,
): Promise<IDataObject | undefined> {
	const type = credentialType(this);
	const credentials = await this.getCredentials(type);
	const options: IHttpRequestOptions = {
		method,
		url: `${String(credentials.baseUrl).replace(/\/+$/, '')}${path}`,
		json: true,
	};
	if (body !== undefined) options.body = body;
	if (qs !== undefined) options.qs = qs;
	try {
		return (await this.helpers.httpRequestWithAuthentication.call(this, type, options)) as IDataObject;
	} catch (error) {
		const failed = new NodeApiError(this.getNode(), error as JsonObject);
		if (missingOk && failed.httpCode === '404') return undefined;
		throw failed;
	}
}

// Every path is workspace-scoped; the credential knows its workspace.
export async function accountId(this: Context): Promise<string> {
	const me = (await nimApiRequest.call(this, 'GET', '/v1/me')) as { account_id: string };
	return encodeURIComponent(me.account_id);
}
