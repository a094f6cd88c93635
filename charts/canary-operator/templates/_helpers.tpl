{{/* Chart name. */}}
{{- define "canary.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Full name: <release>-<chart>, or the release name when it already contains the chart name. */}}
{{- define "canary.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* Labels on every object. */}}
{{- define "canary.labels" -}}
{{ include "canary.metaLabels" . }}
{{ include "canary.selectorLabels" . }}
{{- end }}

{{/* Labels on every object but the selector's: the chart, version, manager and commonLabels. */}}
{{- define "canary.metaLabels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: canary
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Labels that select the operator pods. */}}
{{- define "canary.selectorLabels" -}}
app.kubernetes.io/name: {{ include "canary.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* Labels of the `helm test` Pod that the NetworkPolicy lets ask /readyz: never the
operator's selector, so no Service or PodDisruptionBudget counts the test Pod as an operator. */}}
{{- define "canary.selftestSelectorLabels" -}}
app.kubernetes.io/name: {{ include "canary.name" . }}-selftest
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: test
{{- end }}

{{/* ServiceAccount name. */}}
{{- define "canary.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "canary.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* Image reference: digest wins over tag; the tag defaults to the appVersion. */}}
{{- define "canary.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/* Name of the metrics Service, which is also the Prometheus job label. */}}
{{- define "canary.metricsServiceName" -}}
{{- printf "%s-metrics" (include "canary.fullname" . | trunc 55 | trimSuffix "-") }}
{{- end }}

{{/* Lease that elects the leader (in the release namespace). */}}
{{- define "canary.leaseName" -}}
{{- include "canary.fullname" . }}
{{- end }}

{{/* How the pods share the checks (--sharding): sharding.mode, or by default shards for
several pods, leader for one (off without leaderElection.enabled). Fails on off with several
pods: each would probe every HealthCheck and write its status. */}}
{{- define "canary.shardingMode" -}}
{{- $mode := .Values.sharding.mode }}
{{- $replicas := int .Values.replicaCount }}
{{- if not $mode }}
{{- if gt $replicas 1 }}shards{{ else if .Values.leaderElection.enabled }}leader{{ else }}off{{ end }}
{{- else if and (gt $replicas 1) (eq $mode "off") }}
{{- fail "replicaCount > 1 needs sharding.mode leader or shards: with off every replica would probe every HealthCheck and write its status" }}
{{- else }}
{{- $mode }}
{{- end }}
{{- end }}

{{/* Is there a PodDisruptionBudget? podDisruptionBudget.enabled, by default only in shards mode. */}}
{{- define "canary.pdb" -}}
{{- $enabled := .Values.podDisruptionBudget.enabled }}
{{- if kindIs "invalid" $enabled }}
{{- if eq (include "canary.shardingMode" .) "shards" }}true{{ end }}
{{- else if $enabled }}true{{ end }}
{{- end }}

{{/* PromQL matchers selecting Canary's scrape target. */}}
{{- define "canary.targetSelector" -}}
{{- default (printf "job=%q" (include "canary.metricsServiceName" .)) .Values.prometheusRule.targetSelector }}
{{- end }}

{{/* Is the Prometheus Operator API served? (helm template: --api-versions monitoring.coreos.com/v1) */}}
{{- define "canary.hasMonitoringAPI" -}}
{{- if .Capabilities.APIVersions.Has "monitoring.coreos.com/v1" }}true{{ end }}
{{- end }}

{{/*
RBAC rules for HealthChecks and what they reference, shared by the ClusterRole (all namespaces)
and the per-namespace Roles (watchNamespaces). Each rule matches one API call Canary makes;
tests/chart.rs fails when a rule grants more.
*/}}
{{- define "canary.checkRules" -}}
- apiGroups: ["canary.dev"]
  resources: ["healthchecks"]
  verbs: ["get", "list", "watch"]
- apiGroups: ["canary.dev"]
  resources: ["healthchecks/status"]
  verbs: ["patch"]
- apiGroups: ["events.k8s.io"]
  resources: ["events"]
  verbs: ["create", "patch"]
{{- if .Values.rbac.secrets }}
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["get"]
{{- end }}
{{- if .Values.rbac.configMaps }}
- apiGroups: [""]
  resources: ["configmaps"]
  verbs: ["get"]
{{- end }}
{{- if .Values.rbac.cronJobs }}
- apiGroups: ["batch"]
  resources: ["cronjobs", "jobs"]
  verbs: ["get"]
{{- end }}
{{- if .Values.locations.enabled }}
# The hub: the owner of a check with spec.locations aggregates the CheckReports spokes write.
- apiGroups: ["canary.dev"]
  resources: ["checkreports"]
  verbs: ["list", "watch"]
{{- end }}
{{- if .Values.discovery.enabled }}
# Discovery: generated HealthChecks are applied, pruned and detached; sources are read.
- apiGroups: ["canary.dev"]
  resources: ["healthchecks"]
  verbs: ["create", "patch", "delete"]
- apiGroups: ["canary.dev"]
  resources: ["checkdiscoveries"]
  verbs: ["get", "list", "watch"]
- apiGroups: ["canary.dev"]
  resources: ["checkdiscoveries/status"]
  verbs: ["patch"]
- apiGroups: ["networking.k8s.io"]
  resources: ["ingresses"]
  verbs: ["list", "watch"]
- apiGroups: [""]
  resources: ["services"]
  verbs: ["list", "watch"]
- apiGroups: ["gateway.networking.k8s.io"]
  resources: ["httproutes", "grpcroutes"]
  verbs: ["list", "watch"]
{{- end }}
{{- end }}

{{/* Checks across values that values.schema.json cannot express. */}}
{{- define "canary.validate" -}}
{{- if eq (int .Values.metrics.port) (int .Values.healthProbePort) }}
{{- fail (printf "metrics.port and healthProbePort must differ (both are %d)" (int .Values.metrics.port)) }}
{{- end }}
{{- if le (float64 .Values.prometheusRule.certExpiryWarningDays) (float64 .Values.prometheusRule.certExpiryCriticalDays) }}
{{- fail "prometheusRule.certExpiryWarningDays must be greater than prometheusRule.certExpiryCriticalDays" }}
{{- end }}
{{- if and (not (eq (toString .Values.podDisruptionBudget.minAvailable) "")) (not (eq (toString .Values.podDisruptionBudget.maxUnavailable) "")) }}
{{- fail "podDisruptionBudget: set minAvailable or maxUnavailable, not both" }}
{{- end }}
{{- if and .Values.locations.spoke.hubKubeconfigSecret (not .Values.metrics.location) }}
{{- fail "locations.spoke.hubKubeconfigSecret needs metrics.location: a spoke probes the hub's checks that list its location" }}
{{- end }}
{{- end }}

{{/*
Whether the pods forward check pages to each other (ui.forward.enabled, in shards mode).
*/}}
{{- define "canary.uiForward" -}}
{{- if and .Values.ui.enabled .Values.ui.forward.enabled (eq (include "canary.shardingMode" .) "shards") -}}
true
{{- end -}}
{{- end }}

{{/*
The Secret holding the forwarding key: the user's, or the one the chart creates.
*/}}
{{- define "canary.uiForwardSecret" -}}
{{- .Values.ui.forward.existingSecret | default (printf "%s-ui-forward" (include "canary.fullname" .)) -}}
{{- end }}

{{/*
The status page reads uptime from Prometheus (ui.prometheus.url, with the page on).
*/}}
{{- define "canary.prometheus" -}}
{{- if and .Values.ui.enabled .Values.ui.prometheus.url -}}
true
{{- end -}}
{{- end }}

{{/*
... and mounts a bearer token or a CA for it.
*/}}
{{- define "canary.prometheusFiles" -}}
{{- if include "canary.prometheus" . -}}
{{- with .Values.ui.prometheus -}}
{{- if or .bearerTokenSecret .caConfigMap .caSecret -}}
true
{{- end -}}
{{- end -}}
{{- end -}}
{{- end }}
