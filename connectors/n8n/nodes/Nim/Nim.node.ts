import {
	type IDataObject,
	type IExecuteFunctions,
	type INodeExecutionData,
	type INodeType,
	type INodeTypeDescription,
	type JsonObject,
	NodeApiError,
	NodeConnectionTypes,
	NodeOperationError,
} from 'n8n-workflow';

import { accountId, authenticationProperty, credentialsDescription, nimApiRequest } from './GenericFunctions';

const linkId = (operations: string[], resource = 'link') => ({
	displayName: 'Link ID',
	name: 'linkId',
	type: 'string' as const,
	required: true,
	default: '',
	displayOptions: { show: { resource: [resource], operation: operations } },
});

export class Nim implements INodeType {
	description: INodeTypeDescription = {
		displayName: 'Nim',
		name: 'nim',
		icon: { light: 'file:nim.svg', dark: 'file:nim.dark.svg' },
		group: ['transform'],
		version: 1,
		subtitle: '={{$parameter["operation"] + ": " + $parameter["resource"]}}',
		description: 'Shorten, read, update and delete links, and read their analytics',
		defaults: { name: 'Nim' },
		inputs: [NodeConnectionTypes.Main],
		outputs: [NodeConnectionTypes.Main],
		usableAsTool: true,
		credentials: credentialsDescription,
		properties: [
			authenticationProperty,
			{
				displayName: 'Resource',
				name: 'resource',
				type: 'options',
				noDataExpression: true,
				options: [
					{ name: 'Link', value: 'link' },
					{ name: 'Analytics', value: 'analytics' },
				],
				default: 'link',
			},
			{
				displayName: 'Operation',
				name: 'operation',
				type: 'options',
				noDataExpression: true,
				displayOptions: { show: { resource: ['link'] } },
				options: [
					{ name: 'Create', value: 'create', action: 'Shorten a link' },
					{ name: 'Delete', value: 'delete', action: 'Delete a link' },
					{ name: 'Get', value: 'get', action: 'Get a link' },
					{ name: 'Get Many', value: 'list', action: 'Get many links' },
					{ name: 'Update', value: 'update', action: 'Update a link' },
				],
				default: 'create',
			},
			{
				displayName: 'Operation',
				name: 'operation',
				type: 'options',
				noDataExpression: true,
				displayOptions: { show: { resource: ['analytics'] } },
				options: [{ name: 'Get', value: 'get', action: 'Get analytics of a link' }],
				default: 'get',
			},
			{
				displayName: 'Destination URL',
				name: 'destination',
				type: 'string',
				required: true,
				default: '',
				placeholder: 'https://example.com/page',
				displayOptions: { show: { resource: ['link'], operation: ['create'] } },
			},
			{
				displayName: 'Slug',
				name: 'slug',
				type: 'string',
				default: '',
				description: 'Letters, digits, - and _; leave empty for a random slug',
				displayOptions: { show: { resource: ['link'], operation: ['create'] } },
			},
			linkId(['get', 'update', 'delete']),
			{
				displayName: 'Update Fields',
				name: 'updateFields',
				type: 'collection',
				placeholder: 'Add Field',
				default: {},
				displayOptions: { show: { resource: ['link'], operation: ['update'] } },
				options: [
					{ displayName: 'Destination URL', name: 'destination', type: 'string', default: '' },
					{ displayName: 'Slug', name: 'slug', type: 'string', default: '' },
				],
			},
			{
				displayName: 'Return All',
				name: 'returnAll',
				type: 'boolean',
				default: false,
				description: 'Whether to return all results or only up to a given limit',
				displayOptions: { show: { resource: ['link'], operation: ['list'] } },
			},
			{
				displayName: 'Limit',
				name: 'limit',
				type: 'number',
				typeOptions: { minValue: 1, maxValue: 100 },
				default: 50,
				description: 'Max number of results to return',
				displayOptions: { show: { resource: ['link'], operation: ['list'], returnAll: [false] } },
			},
			linkId(['get'], 'analytics'),
			{
				displayName: 'Days',
				name: 'days',
				type: 'number',
				typeOptions: { minValue: 1, maxValue: 365 },
				default: 30,
				description: 'How many UTC days, up to today, to count clicks for',
				displayOptions: { show: { resource: ['analytics'], operation: ['get'] } },
			},
		],
	};

	async execute(this: IExecuteFunctions): Promise<INodeExecutionData[][]> {
		const items = this.getInputData();
		const results: INodeExecutionData[] = [];
		let account: string | undefined;

		for (let i = 0; i < items.length; i++) {
			try {
				account ??= await accountId.call(this);
				const resource = this.getNodeParameter('resource', i) as string;
				const operation = this.getNodeParameter('operation', i) as string;
				let answer: IDataObject | IDataObject[] = {};

				if (resource === 'link' && operation === 'create') {
					const body: IDataObject = { destination: this.getNodeParameter('destination', i) as string };
					const slug = this.getNodeParameter('slug', i, '') as string;
					if (slug) body.slug = slug;
					answer = (await nimApiRequest.call(this, 'POST', `/v1/workspaces/${account}/links`, body)) as IDataObject;
				} else if (resource === 'link' && operation === 'get') {
					const id = encodeURIComponent(this.getNodeParameter('linkId', i) as string);
					answer = (await nimApiRequest.call(this, 'GET', `/v1/workspaces/${account}/links/${id}`)) as IDataObject;
				} else if (resource === 'link' && operation === 'update') {
					const id = encodeURIComponent(this.getNodeParameter('linkId', i) as string);
					const fields = this.getNodeParameter('updateFields', i, {}) as IDataObject;
					const body = Object.fromEntries(Object.entries(fields).filter(([, value]) => value !== ''));
					answer = (await nimApiRequest.call(this, 'PATCH', `/v1/workspaces/${account}/links/${id}`, body)) as IDataObject;
				} else if (resource === 'link' && operation === 'delete') {
					const id = encodeURIComponent(this.getNodeParameter('linkId', i) as string);
					await nimApiRequest.call(this, 'DELETE', `/v1/workspaces/${account}/links/${id}`);
					answer = { deleted: true, id: this.getNodeParameter('linkId', i) as string };
				} else if (resource === 'link' && operation === 'list') {
					const returnAll = this.getNodeParameter('returnAll', i) as boolean;
					const limit = returnAll ? Infinity : (this.getNodeParameter('limit', i) as number);
					const found: IDataObject[] = [];
					let startingAfter: string | undefined;
					while (found.length < limit) {
						const qs: IDataObject = { limit: Math.min(100, limit - found.length) };
						if (startingAfter) qs.starting_after = startingAfter;
						const page = (await nimApiRequest.call(this, 'GET', `/v1/workspaces/${account}/links`, undefined, qs)) as {
							data: IDataObject[];
							has_more: boolean;
						};
						found.push(...page.data);
						if (!page.has_more || page.data.length === 0) break;
						startingAfter = page.data[page.data.length - 1].id as string;
					}
					answer = found;
				} else if (resource === 'analytics' && operation === 'get') {
					const id = encodeURIComponent(this.getNodeParameter('linkId', i) as string);
					const days = this.getNodeParameter('days', i, 30) as number;
					answer = (await nimApiRequest.call(this, 'GET', `/v1/workspaces/${account}/links/${id}/analytics`, undefined, {
						days,
					})) as IDataObject;
				} else {
					throw new NodeOperationError(this.getNode(), `The operation ${operation} of ${resource} is not supported.`, {
						itemIndex: i,
					});
				}

				const executionData = this.helpers.constructExecutionMetaData(this.helpers.returnJsonArray(answer), {
					itemData: { item: i },
				});
				results.push(...executionData);
			} catch (error) {
				if (this.continueOnFail()) {
					results.push({ json: { error: (error as Error).message }, pairedItem: { item: i } });
					continue;
				}
				// Both hand back an error that is already theirs (a NodeApiError from nimApiRequest keeps its HTTP context).
				if (error instanceof NodeOperationError) throw new NodeOperationError(this.getNode(), error, { itemIndex: i });
				throw new NodeApiError(this.getNode(), error as JsonObject, { itemIndex: i });
			}
		}
		return [results];
	}
}
