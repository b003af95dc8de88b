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

interface Hook extends IDataObject {
	id: string;
	event: string;
	target_url: string;
	status: string;
	secret?: string;
}

// Removes one of this connection's hooks; one that is already gone counts as removed.
async function removeHook(this: IHookFunctions, account: string, hookId: string): Promise<void> {
	const hook = encodeURIComponent(hookId);
	await nimApiRequest.call(this, 'DELETE', `/v1/workspaces/${account}/hooks/${hook}`, undefined, undefined, true);
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
		icon: { light: 'file:../Nim/nim.svg', dark: 'file:../Nim/nim.dark.svg' },
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
			// Asks Nim whether the saved hook is still there and live for this URL and event: saved data alone says
			// nothing after a disconnect (Nim disables the connection's hooks) or a reconnect (a new connection owns none).
			async checkExists(this: IHookFunctions): Promise<boolean> {
				const staticData = this.getWorkflowStaticData('node');
				const webhookUrl = this.getNodeWebhookUrl('default');
				if (typeof staticData.hookId !== 'string' || staticData.webhookUrl !== webhookUrl) return false;
				const account = await accountId.call(this);
				const saved = encodeURIComponent(staticData.hookId);
				const hook = (await nimApiRequest.call(
					this,
					'GET',
					`/v1/workspaces/${account}/hooks/${saved}`,
					undefined,
					undefined,
					true,
				)) as Hook | undefined;
				if (hook === undefined) return false;
				return hook.status === 'active' && hook.target_url === webhookUrl && hook.event === this.getNodeParameter('event');
			},

			async create(this: IHookFunctions): Promise<boolean> {
				const account = await accountId.call(this);
				const staticData = this.getWorkflowStaticData('node');
				if (typeof staticData.hookId === 'string') {
					// A stale hook of this connection (disabled, or for another URL or event): remove it, or ignore it if gone.
					await removeHook.call(this, account, staticData.hookId);
				}
				const hook = (await nimApiRequest.call(this, 'POST', `/v1/workspaces/${account}/hooks`, {
					event: this.getNodeParameter('event') as string,
					target_url: this.getNodeWebhookUrl('default'),
				})) as Hook;
				staticData.hookId = hook.id;
				staticData.secret = hook.secret;
				staticData.webhookUrl = this.getNodeWebhookUrl('default');
				return true;
			},

			// Always forgets the saved hook and reports success: when Nim cannot be asked (the connection was
			// disconnected, or the hook is already gone) Nim has already disabled or removed the hook itself, and saved
			// data kept past this point would make the next activation trust a hook that no longer exists.
			async delete(this: IHookFunctions): Promise<boolean> {
				const staticData = this.getWorkflowStaticData('node');
				const hookId = staticData.hookId;
				delete staticData.hookId;
				delete staticData.secret;
				delete staticData.webhookUrl;
				if (typeof hookId === 'string') {
					try {
						await removeHook.call(this, await accountId.call(this), hookId);
					} catch (error) {
						// See above: nothing is left that this workflow could still remove.
						this.logger.warn('Nim Trigger: the hook could not be removed in Nim; it was forgotten here', {
							hookId,
							error: (error as Error).message,
						});
					}
				}
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
