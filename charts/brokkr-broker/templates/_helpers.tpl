{{/* Names, labels and shared fragments of the brokkr-broker chart. */}}

{{- define "brokkr-broker.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "brokkr-broker.fullname" -}}
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

{{- define "brokkr-broker.postgresql.fullname" -}}
{{- printf "%s-postgresql" (include "brokkr-broker.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "brokkr-broker.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "brokkr-broker.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: brokkr
{{- end }}

{{- define "brokkr-broker.selectorLabels" -}}
app.kubernetes.io/name: {{ include "brokkr-broker.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: broker
{{- end }}

{{- define "brokkr-broker.postgresql.selectorLabels" -}}
app.kubernetes.io/name: {{ include "brokkr-broker.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: postgresql
{{- end }}

{{- define "brokkr-broker.postgresql.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "brokkr-broker.postgresql.selectorLabels" . }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: brokkr
{{- end }}

{{/* Labels of `helm test` pods: no Service, Deployment or NetworkPolicy selects them. */}}
{{- define "brokkr-broker.testLabels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "brokkr-broker.testSelectorLabels" . }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: brokkr
{{- end }}

{{- define "brokkr-broker.testSelectorLabels" -}}
app.kubernetes.io/name: {{ include "brokkr-broker.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: test
{{- end }}

{{- define "brokkr-broker.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "brokkr-broker.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
An image reference. Call with (dict "image" .Values.image "global" .Values.global "default" .Chart.AppVersion).
global.imageRegistry replaces the registry; a digest pins the image and wins over the tag.
*/}}
{{- define "brokkr-broker.image" -}}
{{- $registry := .global.imageRegistry | default .image.registry }}
{{- $repo := .image.repository }}
{{- if $registry }}{{ $repo = printf "%s/%s" $registry $repo }}{{ end }}
{{- if .image.digest }}
{{- printf "%s@%s" $repo .image.digest }}
{{- else }}
{{- printf "%s:%s" $repo (.image.tag | default .default | toString) }}
{{- end }}
{{- end }}

{{- define "brokkr-broker.imagePullSecrets" -}}
{{- $names := concat .Values.imagePullSecrets .Values.global.imagePullSecrets | uniq }}
{{- if $names -}}
imagePullSecrets:
{{- range $names }}
  - name: {{ . | quote }}
{{- end }}
{{- end }}
{{- end }}

{{/* The public test-vector admin PAK's hash: never accepted as the result of an install. */}}
{{- define "brokkr-broker.publicPakHash" -}}
4c697273df3d764cba950bb5c04368097685f09259f5bd880d892cf1ff9f4cdd
{{- end }}

{{- define "brokkr-broker.adminSecretName" -}}
{{- .Values.admin.pak.existingSecret | default (printf "%s-admin" (include "brokkr-broker.fullname" .)) }}
{{- end }}

{{/*
The admin PAK and its hash, as a dict {pak, hash}: reused from the Secret of an
earlier install (lookup), or minted now. Format brokkr_<8 base62>_<24 base62>; the
hash is lowercase hex SHA-256 of the long part.
*/}}
{{- define "brokkr-broker.adminPak" -}}
{{- /* Minted once per rendering: the Secret and the pods' checksum must see the same
PAK, or the first upgrade after an install (which reads it back) would roll them. */}}
{{- if not (hasKey .Values "_brokkrAdminPak") }}
{{- $name := printf "%s-admin" (include "brokkr-broker.fullname" .) }}
{{- $existing := lookup "v1" "Secret" .Release.Namespace $name }}
{{- $pak := "" }}
{{- if and $existing $existing.data (hasKey $existing.data "pak") }}
{{- $pak = index $existing.data "pak" | b64dec }}
{{- else }}
{{- $pak = printf "brokkr_%s_%s" (randAlphaNum 8) (randAlphaNum 24) }}
{{- end }}
{{- $hash := splitList "_" $pak | last | sha256sum }}
{{- if eq $hash (include "brokkr-broker.publicPakHash" .) }}
{{- fail "the admin PAK is the publicly known test PAK; delete the Secret <release>-brokkr-broker-admin so that the chart mints a new one" }}
{{- end }}
{{- $_ := set .Values "_brokkrAdminPak" (dict "pak" $pak "hash" $hash | toJson) }}
{{- end }}
{{- get .Values "_brokkrAdminPak" }}
{{- end }}

{{/* Name of the Secret with the bundled PostgreSQL password. */}}
{{- define "brokkr-broker.postgresql.secretName" -}}
{{- .Values.postgresql.auth.existingSecret | default (include "brokkr-broker.postgresql.fullname" .) }}
{{- end }}

{{/* The bundled PostgreSQL password: reused from an earlier install, or random. */}}
{{- define "brokkr-broker.postgresql.password" -}}
{{- /* Once per rendering, as the admin PAK (the checksums must see the stored value). */}}
{{- if not (hasKey .Values "_brokkrPostgresPassword") }}
{{- $existing := lookup "v1" "Secret" .Release.Namespace (include "brokkr-broker.postgresql.fullname" .) }}
{{- $password := randAlphaNum 32 }}
{{- if and $existing $existing.data (hasKey $existing.data .Values.postgresql.auth.passwordKey) }}
{{- $password = index $existing.data .Values.postgresql.auth.passwordKey | b64dec }}
{{- end }}
{{- $_ := set .Values "_brokkrPostgresPassword" $password }}
{{- end }}
{{- get .Values "_brokkrPostgresPassword" }}
{{- end }}

{{/* The Secret and key that hold the database password or URL, as "name key". */}}
{{- define "brokkr-broker.database.secretRef" -}}
{{- $db := .Values.database }}
{{- if eq $db.mode "bundled" }}
{{- printf "%s %s" (include "brokkr-broker.postgresql.secretName" .) .Values.postgresql.auth.passwordKey }}
{{- else if eq $db.mode "external" }}
{{- if $db.external.existingSecret }}
{{- printf "%s %s" $db.external.existingSecret $db.external.passwordKey }}
{{- else }}
{{- printf "%s-database password" (include "brokkr-broker.fullname" .) }}
{{- end }}
{{- else }}
{{- printf "%s %s" $db.url.existingSecret $db.url.key }}
{{- end }}
{{- end }}

{{/* Fail early, with the fix, on value combinations the schema cannot express. */}}
{{- define "brokkr-broker.validate" -}}
{{- $db := .Values.database }}
{{- if and (eq $db.mode "external") (not $db.external.host) }}
{{- fail "database.mode=external needs database.external.host (and a password or database.external.existingSecret)" }}
{{- end }}
{{- if and (eq $db.mode "external") (not $db.external.password) (not $db.external.existingSecret) }}
{{- fail "database.mode=external needs database.external.existingSecret (preferred) or database.external.password" }}
{{- end }}
{{- if and (eq $db.mode "url") (not $db.url.existingSecret) }}
{{- fail "database.mode=url needs database.url.existingSecret: a Secret whose key database.url.key holds the PostgreSQL URL" }}
{{- end }}
{{- if and .Values.tls.enabled (not .Values.tls.existingSecret) (not .Values.tls.certManager.enabled) }}
{{- fail "tls.enabled needs tls.existingSecret (a kubernetes.io/tls Secret) or tls.certManager.enabled=true" }}
{{- end }}
{{- if and .Values.tls.certManager.enabled (not .Values.tls.certManager.issuerRef.name) }}
{{- fail "tls.certManager.enabled needs tls.certManager.issuerRef.name" }}
{{- end }}
{{- if and .Values.autoscaling.enabled (lt (int .Values.autoscaling.maxReplicas) (int .Values.autoscaling.minReplicas)) }}
{{- fail "autoscaling.maxReplicas must be >= autoscaling.minReplicas" }}
{{- end }}
{{- $pool := .Values.broker.databasePool }}
{{- if gt (int $pool.minSize) (int $pool.maxSize) }}
{{- fail "broker.databasePool.minSize must be <= broker.databasePool.maxSize" }}
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

{{/* Name of the Secret with the TLS certificate served by the broker. */}}
{{- define "brokkr-broker.tlsSecretName" -}}
{{- if .Values.tls.certManager.enabled }}
{{- printf "%s-tls" (include "brokkr-broker.fullname" .) }}
{{- else }}
{{- .Values.tls.existingSecret }}
{{- end }}
{{- end }}

{{/* Seconds the kubelet waits after SIGTERM: the broker's shutdown delay and drain, plus 5. */}}
{{- define "brokkr-broker.terminationGracePeriod" -}}
{{- add (ceil (addf .Values.broker.shutdownDelay .Values.broker.drainTimeout)) 5 }}
{{- end }}

{{/*
Checksum of the Secrets a pod mounts whose content does not come from values: the
bundled PostgreSQL password (minted once, then read back) and every existingSecret.
Hashes each Secret's name and key with its data: the minted password as this
rendering stores it, an existing Secret's current data (lookup), so that `helm
upgrade` after one is rotated rolls the pods, and an upgrade that changes nothing
rolls nothing. lookup answers nothing under `helm template` (GitOps tools): there
only a new name or key changes it. The TLS Secret is left out on purpose: the
broker re-reads its certificate files (tls.reloadInterval), so a renewal needs no roll.
Call with (dict "root" $ "for" "broker"|"postgresql").
*/}}
{{- define "brokkr-broker.mountedSecretsChecksum" -}}
{{- $root := .root }}
{{- $v := $root.Values }}
{{- $refs := list (include "brokkr-broker.database.secretRef" $root) }}
{{- if eq .for "postgresql" }}
{{- $refs = list (printf "%s %s" (include "brokkr-broker.postgresql.secretName" $root) $v.postgresql.auth.passwordKey) }}
{{- else if $v.admin.pak.existingSecret }}
{{- $refs = append $refs (printf "%s %s" $v.admin.pak.existingSecret $v.admin.pak.hashKey) }}
{{- end }}
{{- $minted := "" }}
{{- if and (eq $v.database.mode "bundled") (not $v.postgresql.auth.existingSecret) }}
{{- $minted = include "brokkr-broker.postgresql.fullname" $root }}
{{- end }}
{{- $seen := list }}
{{- range $refs }}
{{- $ref := splitList " " . }}
{{- if eq (index $ref 0) $minted }}
{{- $seen = append $seen (list . (dict (index $ref 1) (include "brokkr-broker.postgresql.password" $root))) }}
{{- else }}
{{- $found := lookup "v1" "Secret" $root.Release.Namespace (index $ref 0) }}
{{- $seen = append $seen (list . (get $found "data")) }}
{{- end }}
{{- end }}
{{- $seen | toJson | sha256sum }}
{{- end }}

{{/*
AppArmor, beside seccomp. The pod securityContext is podSecurityContext plus the
securityContext.appArmorProfile field (GA since Kubernetes 1.30; the charts need
1.35+). An empty appArmorProfile sets none.
*/}}
{{- define "brokkr-broker.podSecurityContext" -}}
{{- $context := deepCopy .Values.podSecurityContext }}
{{- with .Values.appArmorProfile }}
{{- $_ := set $context "appArmorProfile" . }}
{{- end }}
{{- toYaml $context }}
{{- end }}

{{/* The collector's port, for the NetworkPolicy: telemetry.endpoint's explicit port, else 443/80. */}}
{{- define "brokkr-broker.telemetryPort" -}}
{{- $url := urlParse .Values.telemetry.endpoint }}
{{- regexFind ":[0-9]+$" $url.host | trimPrefix ":" | default (ternary "443" "80" (eq $url.scheme "https")) }}
{{- end }}
