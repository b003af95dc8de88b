import { createHmac, timingSafeEqual } from 'crypto';
import type {
	IDataObject,
	IHookFunctions,
	INodeType,
	INodeTypeDescription,
	IWebhookFunctions,
	IWebhookResponseData,
} from 'n8n-workflow';
import { NodeConnectionTypes } from 'n8n-workflow';

import { accountId, authenticationProperty, credentialsDescription, nimApiRequest } from '../Nim/GenericFunctions';

const TOLERANCE_SECONDS = 5 * 60;

interface Hook {
	id: string;
	secret: string;
}

// Standard Webhooks: `v1,` + base64 HMAC-SHA256 of `id.timestamp.body`, keyed with the secret's bytes (the part
// after `whsec_`, base64-decoded, when the secret has that form); deliveries older than five minutes are refused.
export function signatureIsValid(secret: string, headers: IDataObject, rawBody: Buffer, now = Date.now()): boolean {
	const id = String(headers['webhook-id'] ?? '');
	const timestamp = String(headers['webhook-timestamp'] ?? '');
	if (!id || !/^\d+$/.test(timestamp) || Math.abs(now / 1000 - Number(timestamp)) > TOLERANCE_SECONDS) return false;
	const key = secret.startsWith('whsec_') ? Buffer.from(secret.slice(6), 'base64') : Buffer.from(secret);
	const expected = createHmac('sha256', key)
		.update(Buffer.concat([Buffer.from(`${id}.${timestamp}.`), rawBody]))
		.digest();
	return String(headers['webhook-signature'] ?? '')
		.split(' ')
		.some((candidate) => {
			const [version, value] = candidate.split(',');
			const given = Buffer.from(value ?? '', 'base64');
			return version === 'v1' && given.length === expected.length && timingSafeEqual(given, expected);
		});
}

export class NimTrigger implements INodeType {
	description: INodeTypeDescription = {
		displayName: 'Nim Trigger',
		name: 'nimTrigger',
		icon: 'fa:link',
		group: ['trigger'],
		version: 1,
		subtitle: '={{$parameter["event"]}}',
		description: 'Starts the workflow when a link is created, updated, deleted or clicked',
		defaults: { name: 'Nim Trigger' },
		inputs: [],
		outputs: [NodeConnectionTypes.Main],
		credentials: credentialsDescription,
		webhooks: [{ name: 'default', httpMethod: 'POST', responseMode: 'onReceived', path: 'webhook' }],
		properties: [
			authenticationProperty,
			{
				displayName: 'Event',
				name: 'event',
				type: 'options',
				required: true,
				default: 'link.created',
				options: [
					{ name: 'Link Clicked', value: 'link.clicked' },
					{ name: 'Link Created', value: 'link.created' },
					{ name: 'Link Deleted', value: 'link.deleted' },
					{ name: 'Link Updated', value: 'link.updated' },
				],
			},
		],
	};

	webhookMethods = {
		default: {
			// Nim has no call to look one hook up, and this package does not list hooks (see manifest.json): the stored id
			// stands for the hook. A hook Nim removed meanwhile is "not found" at delete, which then counts as done.
			async checkExists(this: IHookFunctions): Promise<boolean> {
				const staticData = this.getWorkflowStaticData('node');
				return typeof staticData.hookId === 'string' && staticData.webhookUrl === this.getNodeWebhookUrl('default');
			},

			async create(this: IHookFunctions): Promise<boolean> {
				const account = await accountId.call(this);
				const hook = (await nimApiRequest.call(this, 'POST', `/v1/workspaces/${account}/hooks`, {
					event: this.getNodeParameter('event') as string,
					target_url: this.getNodeWebhookUrl('default'),
				})) as Hook;
				const staticData = this.getWorkflowStaticData('node');
				staticData.hookId = hook.id;
				staticData.secret = hook.secret;
				staticData.webhookUrl = this.getNodeWebhookUrl('default');
				return true;
			},

			async delete(this: IHookFunctions): Promise<boolean> {
				const staticData = this.getWorkflowStaticData('node');
				if (staticData.hookId) {
					const account = await accountId.call(this);
					const hook = encodeURIComponent(String(staticData.hookId));
					try {
						await nimApiRequest.call(this, 'DELETE', `/v1/workspaces/${account}/hooks/${hook}`);
					} catch (error) {
						// Already gone (deleted in Nim, or after a 410): nothing left to remove.
						if ((error as { httpCode?: string }).httpCode !== '404') return false;
					}
				}
				delete staticData.hookId;
				delete staticData.secret;
				delete staticData.webhookUrl;
				return true;
			},
		},
	};

	async webhook(this: IWebhookFunctions): Promise<IWebhookResponseData> {
		const request = this.getRequestObject();
		const secret = this.getWorkflowStaticData('node').secret as string | undefined;
		if (!secret || !signatureIsValid(secret, this.getHeaderData() as IDataObject, request.rawBody)) {
			this.getResponseObject().status(401).json({ error: 'invalid_signature' });
			return { noWebhookResponse: true };
		}
		return { workflowData: [this.helpers.returnJsonArray(this.getBodyData())] };
	}
}
