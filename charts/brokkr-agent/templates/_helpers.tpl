{{/* Names, labels and shared fragments of the brokkr-agent chart. */}}

{{- define "brokkr-agent.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "brokkr-agent.fullname" -}}
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

{{- /* Cluster-scoped objects (ClusterRoles and their bindings) carry the release's
namespace too: two releases of the same name in two namespaces must not share them. */}}
{{- define "brokkr-agent.clusterScopedName" -}}
{{- printf "%s-%s" .Release.Namespace (include "brokkr-agent.fullname" .) }}
{{- end }}

{{- /* The broker's TCP port for the egress rule: broker.port, else broker.url's. */}}
{{- define "brokkr-agent.brokerPort" -}}
{{- if .Values.broker.port }}
{{- .Values.broker.port }}
{{- else }}
{{- $url := urlParse .Values.broker.url }}
{{- $explicit := regexFind ":[0-9]+$" $url.host | trimPrefix ":" }}
{{- $explicit | default (ternary "443" "80" (eq $url.scheme "https")) }}
{{- end }}
{{- end }}

{{- define "brokkr-agent.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "brokkr-agent.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: brokkr
{{- end }}

{{- define "brokkr-agent.selectorLabels" -}}
app.kubernetes.io/name: {{ include "brokkr-agent.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: agent
{{- end }}

{{/* Labels of `helm test` pods: the Deployment and NetworkPolicy never select them. */}}
{{- define "brokkr-agent.testLabels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ include "brokkr-agent.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: test
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: brokkr
{{- end }}

{{- define "brokkr-agent.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "brokkr-agent.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
An image reference. Call with (dict "image" .Values.image "global" .Values.global "default" .Chart.AppVersion).
global.imageRegistry replaces the registry; a digest pins the image and wins over the tag.
*/}}
{{- define "brokkr-agent.image" -}}
{{- $registry := .global.imageRegistry | default .image.registry }}
{{- $repo := .image.repository }}
{{- if $registry }}{{ $repo = printf "%s/%s" $registry $repo }}{{ end }}
{{- if .image.digest }}
{{- printf "%s@%s" $repo .image.digest }}
{{- else }}
{{- printf "%s:%s" $repo (.image.tag | default .default | toString) }}
{{- end }}
{{- end }}

{{- define "brokkr-agent.imagePullSecrets" -}}
{{- $names := concat .Values.imagePullSecrets .Values.global.imagePullSecrets | uniq }}
{{- if $names -}}
imagePullSecrets:
{{- range $names }}
  - name: {{ . | quote }}
{{- end }}
{{- end }}
{{- end }}

{{- define "brokkr-agent.pakSecretName" -}}
{{- .Values.pak.existingSecret | default (printf "%s-pak" (include "brokkr-agent.fullname" .)) }}
{{- end }}

{{/* The namespace the agent manages in namespace scope. */}}
{{- define "brokkr-agent.watchNamespace" -}}
{{- .Values.rbac.watchNamespace | default .Release.Namespace }}
{{- end }}

{{/* Required values and unsafe combinations fail rendering with the fix. */}}
{{- define "brokkr-agent.validate" -}}
{{- if not .Values.broker.url }}
{{- fail "broker.url is required: the broker's URL, e.g. --set broker.url=https://brokkr.example.com" }}
{{- end }}
{{- if not .Values.agent.name }}
{{- fail "agent.name is required: the agent's name as registered at the broker, e.g. --set agent.name=prod-eu-1" }}
{{- end }}
{{- if not .Values.agent.clusterName }}
{{- fail "agent.clusterName is required: the name of this cluster, e.g. --set agent.clusterName=prod-eu" }}
{{- end }}
{{- if and (not .Values.pak.value) (not .Values.pak.existingSecret) }}
{{- fail "a PAK source is required: set pak.existingSecret (a Secret with key pak.key holding the agent's PAK) or pak.value" }}
{{- end }}
{{- if eq .Values.pak.value "brokkr_BR3rVsDa_GK3QN7CDUzYc6iKgMkJ98M2WSimM5t6U8" }}
{{- fail "pak.value is the publicly known test PAK; create an agent at the broker and use the PAK it returns" }}
{{- end }}
{{- if not .Values.rbac.allowWildcardAccess }}
{{- range .Values.rbac.managedResources }}
{{- if or (has "*" .resources) (has "*" .apiGroups) }}
{{- fail "rbac.managedResources contains \"*\"; list the kinds explicitly, or set rbac.allowWildcardAccess=true if you really want the agent to manage everything" }}
{{- end }}
{{- end }}
{{- if has "*" .Values.rbac.managedVerbs }}
{{- fail "rbac.managedVerbs contains \"*\"; list the verbs explicitly, or set rbac.allowWildcardAccess=true" }}
{{- end }}
{{- end }}
{{- with .Values.appArmorProfile }}
{{- if not .type }}
{{- fail "appArmorProfile needs a type: RuntimeDefault, or Localhost with localhostProfile (or {} for none)" }}
{{- end }}
{{- if and (eq .type "Localhost") (not .localhostProfile) }}
{{- fail "appArmorProfile.type Localhost needs appArmorProfile.localhostProfile: the name of a profile loaded on every node" }}
{{- end }}
{{- end }}
{{- end }}

{{/*
Checksum of what the pod mounts that the chart does not render from values: an
existing PAK Secret and an existing CA ConfigMap. Hashes their names, keys and
current data (lookup), so that `helm upgrade` after one is rotated rolls the pod.
lookup answers nothing under `helm template` (GitOps tools): there only a new name or
key changes it.
*/}}
{{- define "brokkr-agent.mountedChecksum" -}}
{{- $seen := list }}
{{- with .Values.pak.existingSecret }}
{{- $found := lookup "v1" "Secret" $.Release.Namespace . }}
{{- $seen = append $seen (list "Secret" . $.Values.pak.key (get $found "data")) }}
{{- end }}
{{- with .Values.broker.caBundleConfigMap }}
{{- $found := lookup "v1" "ConfigMap" $.Release.Namespace . }}
{{- $seen = append $seen (list "ConfigMap" . $.Values.broker.caBundleKey (get $found "data")) }}
{{- end }}
{{- $seen | toJson | sha256sum }}
{{- end }}

{{/*
AppArmor, beside seccomp. The pod securityContext is podSecurityContext plus the
securityContext.appArmorProfile field (GA since Kubernetes 1.30; the charts need
1.35+). An empty appArmorProfile sets none.
*/}}
{{- define "brokkr-agent.podSecurityContext" -}}
{{- $context := deepCopy .Values.podSecurityContext }}
{{- with .Values.appArmorProfile }}
{{- $_ := set $context "appArmorProfile" . }}
{{- end }}
{{- toYaml $context }}
{{- end }}

{{/* The collector's port, for the NetworkPolicy: telemetry.endpoint's explicit port, else 443/80. */}}
{{- define "brokkr-agent.telemetryPort" -}}
{{- $url := urlParse .Values.telemetry.endpoint }}
{{- regexFind ":[0-9]+$" $url.host | trimPrefix ":" | default (ternary "443" "80" (eq $url.scheme "https")) }}
{{- end }}
