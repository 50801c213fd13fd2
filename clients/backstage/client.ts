// The Cost Insights client of the README ("Backstage"), compiled against the plugin's own types by
// the API's tests: `tsc --noEmit --strict`, and JSON Schemas of the response types below validate
// every Backstage route's answers. Register it in packages/app/src/apis.ts:
//   createApiFactory({ api: costInsightsApiRef, deps: { discoveryApi: discoveryApiRef, fetchApi: fetchApiRef },
//                      factory: d => new FinopsCostInsightsClient(d.discoveryApi, d.fetchApi) })
import type { DiscoveryApi, FetchApi } from '@backstage/core-plugin-api';
import {
  ProjectGrowthAlert,
  type Alert,
  type Cost,
  type CostInsightsApi,
  type Entity,
  type Group,
  type MetricData,
  type ProductInsightsOptions,
  type Project,
  type ProjectGrowthData,
} from '@backstage/plugin-cost-insights';

/** GET backstage/last-complete-billing-date */
export interface BillingDate {
  date: string;
}

/** An element of GET backstage/groups/{group}/alerts: the plugin's ProjectGrowthData, with the
 * API's own title and subtitle (SPIKE, DROP and NEW each say what happened). */
export interface FinopsAlertData extends ProjectGrowthData {
  title: string;
  subtitle: string;
}

/** The plugin's growth alert (its chart and card), with the API's title and subtitle instead of
 * the generic "Investigate cost growth" that ProjectGrowthAlert's getters return. */
export class FinopsGrowthAlert extends ProjectGrowthAlert {
  constructor(private readonly finops: FinopsAlertData) {
    super(finops);
  }

  get title(): string {
    return this.finops.title;
  }

  get subtitle(): string {
    return this.finops.subtitle;
  }
}

export class FinopsCostInsightsClient implements CostInsightsApi {
  constructor(private readonly discovery: DiscoveryApi, private readonly fetchApi: FetchApi) {}

  // The body is `unknown` until it is named: the API's tests hold each route to the type named here.
  private async get<T>(path: string): Promise<T> {
    const base = `${await this.discovery.getBaseUrl('proxy')}/finops`;
    const response = await this.fetchApi.fetch(base + path);
    const body: unknown = await response.json();
    if (!response.ok) {
      const detail = typeof body === 'object' && body !== null && 'detail' in body ? String(body.detail) : '';
      throw new Error(`FinOps API ${response.status}: ${detail}`);
    }
    return body as T;
  }

  async getLastCompleteBillingDate(): Promise<string> {
    return (await this.get<BillingDate>('/last-complete-billing-date')).date;
  }

  getUserGroups(_userId: string): Promise<Group[]> {
    return this.get<Group[]>('/groups');
  }

  getGroupProjects(group: string): Promise<Project[]> {
    return this.get<Project[]>(`/groups/${encodeURIComponent(group)}/projects`);
  }

  getGroupDailyCost(group: string, intervals: string): Promise<Cost> {
    return this.get<Cost>(`/groups/${encodeURIComponent(group)}/cost?intervals=${encodeURIComponent(intervals)}`);
  }

  getProjectDailyCost(project: string, intervals: string): Promise<Cost> {
    return this.get<Cost>(
      `/projects/${encodeURIComponent(project)}/cost?intervals=${encodeURIComponent(intervals)}`,
    );
  }

  getProductInsights(options: ProductInsightsOptions): Promise<Entity> {
    const query = new URLSearchParams({ intervals: options.intervals, group: options.group });
    if (options.project) query.set('project', options.project);
    return this.get<Entity>(`/products/${encodeURIComponent(options.product)}/insights?${query}`);
  }

  async getAlerts(group: string): Promise<Alert[]> {
    const alerts = await this.get<FinopsAlertData[]>(`/groups/${encodeURIComponent(group)}/alerts`);
    return alerts.map(data => new FinopsGrowthAlert(data));
  }

  // No business metrics in the mart: an empty series.
  async getDailyMetricData(metric: string, _intervals: string): Promise<MetricData> {
    return { id: metric, format: 'number', aggregation: [], change: { amount: 0 } };
  }
}
