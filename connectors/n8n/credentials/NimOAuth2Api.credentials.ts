import type { ICredentialType, Icon, INodeProperties } from 'n8n-workflow';

// The scopes of the endpoints the Nim nodes call (see manifest.json).
const SCOPES = 'links:read links:write analytics:read hooks:write';

// n8n's OAuth2 credential does the flow; this one fixes everything but the base URL, client id and secret.
// The workspace admin registers this n8n instance's callback URL (<n8n>/rest/oauth2-credential/callback) in Nim.
export class NimOAuth2Api implements ICredentialType {
	name = 'nimOAuth2Api';

	extends = ['oAuth2Api'];

	displayName = 'Nim OAuth2 API';

	icon: Icon = { light: 'file:../nodes/Nim/nim.svg', dark: 'file:../nodes/Nim/nim.dark.svg' };

	documentationUrl = 'https://nim.example/docs/integrations/n8n';

	properties: INodeProperties[] = [
		{
			displayName: 'Base URL',
			name: 'baseUrl',
			type: 'string',
			default: 'https://nim.example',
			description: 'The address of your Nim, without a trailing slash',
		},
		{
			displayName: 'Grant Type',
			name: 'grantType',
			type: 'hidden',
			default: 'pkce',
		},
		{
			displayName: 'Authorization URL',
			name: 'authUrl',
			type: 'hidden',
			default: '={{$self["baseUrl"]}}/oauth/authorize',
		},
		{
			displayName: 'Access Token URL',
			name: 'accessTokenUrl',
			type: 'hidden',
			default: '={{$self["baseUrl"]}}/oauth/token',
		},
		{
			displayName: 'Scope',
			name: 'scope',
			type: 'hidden',
			default: SCOPES,
		},
		{
			displayName: 'Auth URI Query Parameters',
			name: 'authQueryParameters',
			type: 'hidden',
			default: '',
		},
		{
			displayName: 'Authentication',
			name: 'authentication',
			type: 'hidden',
			default: 'header',
		},
	];
}
