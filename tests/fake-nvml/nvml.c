/* A stand-in libnvidia-ml.so.1 for tests on machines without an NVIDIA GPU (tests/tests/gpu.rs).
 *
 * It exports the NVML entry points nodetune calls (and the unversioned memory call real
 * drivers keep exporting), with nvml.h's signatures and versioned structs, and answers with
 * three canned GPUs:
 *   0  "NVIDIA H100 80GB HBM3": every query answers; clocks held down by sw_power_cap and
 *      hw_thermal_slowdown;
 *   1  "NVIDIA A10": power and clock-event reasons are NVML_ERROR_NOT_SUPPORTED, utilisation
 *      fails with NVML_ERROR_UNKNOWN;
 *   2  a GPU that fell off the bus: its handle is returned, every query on it answers
 *      NVML_ERROR_GPU_IS_LOST.
 * Built with -DPRE_R535 it lacks nvmlDeviceGetCurrentClocksEventReasons, as drivers before
 * R535 do. FAKE_NVML_INIT_ERROR=N makes nvmlInit_v2 return N; FAKE_NVML_TRACE=FILE appends
 * the name of every call made. Written for the tests from NVIDIA's public nvml.h API.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef int nvmlReturn_t;
#define NVML_SUCCESS 0
#define NVML_ERROR_UNINITIALIZED 1
#define NVML_ERROR_INVALID_ARGUMENT 2
#define NVML_ERROR_NOT_SUPPORTED 3
#define NVML_ERROR_INSUFFICIENT_SIZE 7
#define NVML_ERROR_GPU_IS_LOST 15
#define NVML_ERROR_ARGUMENT_VERSION_MISMATCH 25
#define NVML_ERROR_UNKNOWN 999

typedef struct nvmlDevice_st *nvmlDevice_t;
typedef struct {
    unsigned int gpu;
    unsigned int memory;
} nvmlUtilization_t;
typedef struct {
    unsigned int version;
    unsigned long long total;
    unsigned long long reserved;
    unsigned long long free;
    unsigned long long used;
} nvmlMemory_v2_t;
#define NVML_STRUCT_VERSION(size, ver) ((unsigned int)(size) | ((ver) << 24U))
#define nvmlMemory_v2 NVML_STRUCT_VERSION(sizeof(nvmlMemory_v2_t), 2)

struct nvmlDevice_st {
    int index;
};
static struct nvmlDevice_st gpus[3] = {{0}, {1}, {2}};
static int initialised;

static void trace(const char *call) {
    const char *path = getenv("FAKE_NVML_TRACE");
    if (!path)
        return;
    FILE *f = fopen(path, "a");
    if (f) {
        fprintf(f, "%s\n", call);
        fclose(f);
    }
}

/* Every device query starts here: a known handle of an initialised library, not lost. */
static nvmlReturn_t check(const char *call, nvmlDevice_t d) {
    trace(call);
    if (!initialised)
        return NVML_ERROR_UNINITIALIZED;
    if (d != &gpus[0] && d != &gpus[1] && d != &gpus[2])
        return NVML_ERROR_INVALID_ARGUMENT;
    if (d->index == 2)
        return NVML_ERROR_GPU_IS_LOST;
    return NVML_SUCCESS;
}

static nvmlReturn_t copy(const char *s, char *out, unsigned int len) {
    if (!out || strlen(s) + 1 > len)
        return NVML_ERROR_INSUFFICIENT_SIZE;
    strcpy(out, s);
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlInit_v2(void) {
    trace("nvmlInit_v2");
    const char *e = getenv("FAKE_NVML_INIT_ERROR");
    if (e)
        return atoi(e);
    initialised = 1;
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlShutdown(void) {
    trace("nvmlShutdown");
    initialised = 0;
    return NVML_SUCCESS;
}

const char *nvmlErrorString(nvmlReturn_t r) {
    switch (r) {
    case NVML_SUCCESS: return "Success";
    case NVML_ERROR_NOT_SUPPORTED: return "Not Supported";
    case NVML_ERROR_GPU_IS_LOST: return "GPU is lost";
    default: return "Unknown Error";
    }
}

nvmlReturn_t nvmlSystemGetDriverVersion(char *version, unsigned int len) {
    trace("nvmlSystemGetDriverVersion");
    return copy("550.54.15", version, len);
}

nvmlReturn_t nvmlDeviceGetCount_v2(unsigned int *count) {
    trace("nvmlDeviceGetCount_v2");
    if (!initialised)
        return NVML_ERROR_UNINITIALIZED;
    *count = 3;
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetHandleByIndex_v2(unsigned int index, nvmlDevice_t *device) {
    trace("nvmlDeviceGetHandleByIndex_v2");
    if (!initialised)
        return NVML_ERROR_UNINITIALIZED;
    if (index > 2 || !device)
        return NVML_ERROR_INVALID_ARGUMENT;
    *device = &gpus[index];
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetName(nvmlDevice_t d, char *name, unsigned int len) {
    nvmlReturn_t r = check("nvmlDeviceGetName", d);
    if (r)
        return r;
    return copy(d->index == 0 ? "NVIDIA H100 80GB HBM3" : "NVIDIA A10", name, len);
}

nvmlReturn_t nvmlDeviceGetUUID(nvmlDevice_t d, char *uuid, unsigned int len) {
    nvmlReturn_t r = check("nvmlDeviceGetUUID", d);
    if (r)
        return r;
    return copy(d->index == 0 ? "GPU-5c1b2b6e-0000-4000-8000-000000000000"
                              : "GPU-7d2c3c7f-1111-4000-8000-111111111111",
                uuid, len);
}

nvmlReturn_t nvmlDeviceGetTemperature(nvmlDevice_t d, int sensor, unsigned int *temp) {
    nvmlReturn_t r = check("nvmlDeviceGetTemperature", d);
    if (r)
        return r;
    if (sensor != 0) /* NVML_TEMPERATURE_GPU */
        return NVML_ERROR_INVALID_ARGUMENT;
    *temp = d->index == 0 ? 71 : 40;
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetPowerUsage(nvmlDevice_t d, unsigned int *mw) {
    nvmlReturn_t r = check("nvmlDeviceGetPowerUsage", d);
    if (r)
        return r;
    if (d->index == 1)
        return NVML_ERROR_NOT_SUPPORTED;
    *mw = 312500;
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetUtilizationRates(nvmlDevice_t d, nvmlUtilization_t *u) {
    nvmlReturn_t r = check("nvmlDeviceGetUtilizationRates", d);
    if (r)
        return r;
    if (d->index == 1)
        return NVML_ERROR_UNKNOWN;
    u->gpu = 87;
    u->memory = 40;
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetClockInfo(nvmlDevice_t d, int type, unsigned int *mhz) {
    nvmlReturn_t r = check("nvmlDeviceGetClockInfo", d);
    if (r)
        return r;
    /* NVML_CLOCK_GRAPHICS, NVML_CLOCK_SM, NVML_CLOCK_MEM */
    static const unsigned int h100[3] = {1980, 1980, 2619}, a10[3] = {1695, 1695, 6251};
    if (type < 0 || type > 2)
        return NVML_ERROR_INVALID_ARGUMENT;
    *mhz = d->index == 0 ? h100[type] : a10[type];
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetMemoryInfo_v2(nvmlDevice_t d, nvmlMemory_v2_t *m) {
    nvmlReturn_t r = check("nvmlDeviceGetMemoryInfo_v2", d);
    if (r)
        return r;
    if (m->version != nvmlMemory_v2)
        return NVML_ERROR_ARGUMENT_VERSION_MISMATCH;
    m->total = d->index == 0 ? 85520809984ULL : 24146608128ULL;
    m->reserved = 520093696ULL;
    m->used = d->index == 0 ? 1000000000ULL : 0ULL;
    m->free = m->total - m->reserved - m->used;
    return NVML_SUCCESS;
}

/* The unversioned call real drivers still export: `used` includes the driver's reservation. */
typedef struct {
    unsigned long long total;
    unsigned long long free;
    unsigned long long used;
} nvmlMemory_t;

nvmlReturn_t nvmlDeviceGetMemoryInfo(nvmlDevice_t d, nvmlMemory_t *m) {
    trace("nvmlDeviceGetMemoryInfo");
    nvmlMemory_v2_t v2 = {nvmlMemory_v2, 0, 0, 0, 0};
    nvmlReturn_t r = nvmlDeviceGetMemoryInfo_v2(d, &v2);
    if (r)
        return r;
    m->total = v2.total;
    m->free = v2.free;
    m->used = v2.used + v2.reserved;
    return NVML_SUCCESS;
}

static nvmlReturn_t reasons(const char *call, nvmlDevice_t d, unsigned long long *bits) {
    nvmlReturn_t r = check(call, d);
    if (r)
        return r;
    if (d->index == 1)
        return NVML_ERROR_NOT_SUPPORTED;
    *bits = 0x4ULL | 0x40ULL; /* sw_power_cap, hw_thermal_slowdown */
    return NVML_SUCCESS;
}

#ifndef PRE_R535
nvmlReturn_t nvmlDeviceGetCurrentClocksEventReasons(nvmlDevice_t d, unsigned long long *bits) {
    return reasons("nvmlDeviceGetCurrentClocksEventReasons", d, bits);
}
#endif

nvmlReturn_t nvmlDeviceGetCurrentClocksThrottleReasons(nvmlDevice_t d, unsigned long long *bits) {
    return reasons("nvmlDeviceGetCurrentClocksThrottleReasons", d, bits);
}
