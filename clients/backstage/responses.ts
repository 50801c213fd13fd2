// What each Backstage route answers, named after the route, in the plugin's own types: the API's
// tests generate a JSON Schema for each (generate-schemas.mjs) and validate the routes' bodies.
import type { Cost, Entity, Group, Project } from '@backstage/plugin-cost-insights';
import type { BillingDate, FinopsAlertData } from './client';

export type LastCompleteBillingDateBody = BillingDate;
export type GroupsBody = Group[];
export type GroupProjectsBody = Project[];
export type CostBody = Cost;
export type ProductInsightsBody = Entity;
export type AlertsBody = FinopsAlertData[];
