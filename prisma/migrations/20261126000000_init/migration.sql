-- CreateSchema
CREATE SCHEMA IF NOT EXISTS "public";

-- CreateEnum
CREATE TYPE "SystemMode" AS ENUM ('EXCLUSIVE', 'SHARED');

-- CreateEnum
CREATE TYPE "HttpMethod" AS ENUM ('GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE');

-- CreateEnum
CREATE TYPE "CredentialKind" AS ENUM ('NONE', 'BEARER', 'HEADER', 'OAUTH2_CLIENT_CREDENTIALS');

-- CreateEnum
CREATE TYPE "Role" AS ENUM ('ADMIN', 'CALLER');

-- CreateTable
CREATE TABLE "Tenant" (
    "id" TEXT NOT NULL,
    "name" TEXT NOT NULL,
    "disabled" BOOLEAN NOT NULL DEFAULT false,
    "createdAt" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updatedAt" TIMESTAMPTZ(3) NOT NULL,

    CONSTRAINT "Tenant_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "System" (
    "id" TEXT NOT NULL,
    "name" TEXT NOT NULL,
    "mode" "SystemMode" NOT NULL,
    "sharedBaseUrl" TEXT,
    "tenantHeader" TEXT NOT NULL DEFAULT 'X-Tenant-Id',
    "timeoutMs" INTEGER NOT NULL DEFAULT 10000,
    "batchPath" TEXT,
    "batchMaxSize" INTEGER NOT NULL DEFAULT 20,
    "createdAt" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updatedAt" TIMESTAMPTZ(3) NOT NULL,

    CONSTRAINT "System_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "Binding" (
    "tenantId" TEXT NOT NULL,
    "systemId" TEXT NOT NULL,
    "baseUrl" TEXT,
    "credentialKind" "CredentialKind" NOT NULL DEFAULT 'NONE',
    "credentialHeaderName" TEXT,
    "credentialCiphertext" TEXT,
    "credentialKeyId" TEXT,
    "credentialUpdatedAt" TIMESTAMPTZ(3),
    "credentialExpiresAt" TIMESTAMPTZ(3),
    "disabled" BOOLEAN NOT NULL DEFAULT false,
    "createdAt" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updatedAt" TIMESTAMPTZ(3) NOT NULL,

    CONSTRAINT "Binding_pkey" PRIMARY KEY ("tenantId","systemId")
);

-- CreateTable
CREATE TABLE "Caller" (
    "id" TEXT NOT NULL,
    "name" TEXT NOT NULL,
    "role" "Role" NOT NULL DEFAULT 'CALLER',
    "tenantId" TEXT,
    "disabled" BOOLEAN NOT NULL DEFAULT false,
    "createdAt" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updatedAt" TIMESTAMPTZ(3) NOT NULL,

    CONSTRAINT "Caller_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "ApiKey" (
    "id" TEXT NOT NULL,
    "callerId" TEXT NOT NULL,
    "prefix" TEXT NOT NULL,
    "hash" TEXT NOT NULL,
    "createdAt" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "lastUsedAt" TIMESTAMPTZ(3),
    "revokedAt" TIMESTAMPTZ(3),
    "expiresAt" TIMESTAMPTZ(3),

    CONSTRAINT "ApiKey_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "Grant" (
    "id" TEXT NOT NULL,
    "callerId" TEXT NOT NULL,
    "tenantId" TEXT NOT NULL,
    "systemId" TEXT,
    "methods" "HttpMethod"[],
    "pathPrefix" TEXT,
    "expiresAt" TIMESTAMPTZ(3),
    "createdAt" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "Grant_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "Invocation" (
    "seq" BIGSERIAL NOT NULL,
    "id" TEXT NOT NULL,
    "createdAt" TIMESTAMPTZ(3) NOT NULL,
    "callerId" TEXT,
    "tenantId" TEXT NOT NULL,
    "systemId" TEXT NOT NULL,
    "method" "HttpMethod" NOT NULL,
    "path" TEXT NOT NULL,
    "status" INTEGER,
    "code" TEXT,
    "durationMs" DOUBLE PRECISION NOT NULL,
    "requestId" TEXT NOT NULL,
    "prevHash" TEXT NOT NULL,
    "hash" TEXT NOT NULL,

    CONSTRAINT "Invocation_pkey" PRIMARY KEY ("seq")
);

-- CreateIndex
CREATE INDEX "Binding_systemId_idx" ON "Binding"("systemId");

-- CreateIndex
CREATE INDEX "Caller_tenantId_idx" ON "Caller"("tenantId");

-- CreateIndex
CREATE UNIQUE INDEX "ApiKey_hash_key" ON "ApiKey"("hash");

-- CreateIndex
CREATE INDEX "ApiKey_callerId_idx" ON "ApiKey"("callerId");

-- CreateIndex
CREATE INDEX "Grant_callerId_idx" ON "Grant"("callerId");

-- CreateIndex
CREATE INDEX "Grant_tenantId_idx" ON "Grant"("tenantId");

-- CreateIndex
CREATE UNIQUE INDEX "Invocation_id_key" ON "Invocation"("id");

-- CreateIndex
CREATE INDEX "Invocation_tenantId_seq_idx" ON "Invocation"("tenantId", "seq");

-- CreateIndex
CREATE INDEX "Invocation_systemId_seq_idx" ON "Invocation"("systemId", "seq");

-- CreateIndex
CREATE INDEX "Invocation_callerId_seq_idx" ON "Invocation"("callerId", "seq");

-- AddForeignKey
ALTER TABLE "Binding" ADD CONSTRAINT "Binding_tenantId_fkey" FOREIGN KEY ("tenantId") REFERENCES "Tenant"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "Binding" ADD CONSTRAINT "Binding_systemId_fkey" FOREIGN KEY ("systemId") REFERENCES "System"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "Caller" ADD CONSTRAINT "Caller_tenantId_fkey" FOREIGN KEY ("tenantId") REFERENCES "Tenant"("id") ON DELETE SET NULL ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "ApiKey" ADD CONSTRAINT "ApiKey_callerId_fkey" FOREIGN KEY ("callerId") REFERENCES "Caller"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "Grant" ADD CONSTRAINT "Grant_callerId_fkey" FOREIGN KEY ("callerId") REFERENCES "Caller"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "Grant" ADD CONSTRAINT "Grant_tenantId_fkey" FOREIGN KEY ("tenantId") REFERENCES "Tenant"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "Grant" ADD CONSTRAINT "Grant_systemId_fkey" FOREIGN KEY ("systemId") REFERENCES "System"("id") ON DELETE CASCADE ON UPDATE CASCADE;

