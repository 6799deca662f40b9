// CPU backend entry: check the arguments, then run every (batch, head, query block) task.
#include "../core/mask_rules.h"
#include "flash_forward.h"
#include "ops_portable.h"
#include "qkv/attention.h"

namespace qkv {

Status attention_cpu(const AttentionArgs& args) {
  Status status = check(args);
  if (!status.ok()) return status;
  const std::int64_t tasks = cpu::task_count(args);
  if (tasks == 0) return status;
  const MaskRules rules = mask_rules_of(args);
  cpu::Scratch scratch;
  scratch.reserve(args.q.shape[3], args.v.shape[3]);
  for (std::int64_t t = 0; t < tasks; ++t) cpu::forward_task<cpu::PortableOps>(args, rules, t, scratch);
  return status;
}

}  // namespace qkv
