// SPDX-License-Identifier: GPL-2.0
/*
 * qvmshm_test: the virtual test host's Linux driver for qvm's shared-memory vdev (docs/shmem.md,
 * spec §11), written for qvm's tests. It binds the PCI function 1C05:0001, checks the factory
 * page's signature, attaches the region named by `name` (`pages` data pages), maps the control
 * page and the data pages, and takes the function's interrupt. User space drives it through
 * /dev/qvmshm (read/write/lseek: the data pages) and sysfs attributes of that device:
 *   info     "idx=I pages=P vector=V shmem=0x..." (read)
 *   status   "pending=0x.. attached=0x.." as the interrupt handler last saw them, plus the bits
 *            pending ever seen since load (read)
 *   live     the control page's status read now (its pending bits join `seen`) (read)
 *   irqs     interrupts handled (read)
 *   notify   a hex bitset of clients to notify, or "all" (write)
 */
#include <linux/atomic.h>
#include <linux/fs.h>
#include <linux/interrupt.h>
#include <linux/io.h>
#include <linux/miscdevice.h>
#include <linux/module.h>
#include <linux/pci.h>
#include <linux/uaccess.h>

#define SHM_SIGNATURE 0x4d534732474d5651ull

struct factory_regs {
	u64 signature;
	u64 shmem;
	u32 vector;
	u32 status;
	u32 size;
	char name[32];
	u32 find;
};

struct control_regs {
	u32 status;
	u32 idx;
	u32 notify;
	u32 detach;
};

static char *name = "l2pair";
module_param(name, charp, 0444);
MODULE_PARM_DESC(name, "region name");
static uint pages = 4;
module_param(pages, uint, 0444);
MODULE_PARM_DESC(pages, "data pages when the region is created");

static struct {
	struct pci_dev *pdev;
	struct factory_regs __iomem *fact;
	struct control_regs __iomem *ctrl;
	void __iomem *data;
	u64 shmem;
	u32 idx, npages, vector;
	atomic_t irqs;
	atomic_t seen; /* pending bits ever seen */
	u32 last_status;
} shm;

static irqreturn_t shm_irq(int irq, void *arg)
{
	u32 st = readl(&shm.ctrl->status); /* reading clears the pending bits */

	shm.last_status = st;
	atomic_or(st & 0xffff, &shm.seen);
	atomic_inc(&shm.irqs);
	return IRQ_HANDLED; /* the line may be shared: status 0 is still ours after an attach */
}

static ssize_t shm_read(struct file *f, char __user *buf, size_t len, loff_t *pos)
{
	size_t size = (size_t)shm.npages * PAGE_SIZE;
	void *tmp;

	if (*pos >= size)
		return 0;
	len = min_t(size_t, len, size - *pos);
	len = min_t(size_t, len, PAGE_SIZE);
	tmp = kmalloc(len, GFP_KERNEL);
	if (!tmp)
		return -ENOMEM;
	memcpy_fromio(tmp, shm.data + *pos, len);
	if (copy_to_user(buf, tmp, len)) {
		kfree(tmp);
		return -EFAULT;
	}
	kfree(tmp);
	*pos += len;
	return len;
}

static ssize_t shm_write(struct file *f, const char __user *buf, size_t len, loff_t *pos)
{
	size_t size = (size_t)shm.npages * PAGE_SIZE;
	void *tmp;

	if (*pos >= size)
		return -ENOSPC;
	len = min_t(size_t, len, size - *pos);
	len = min_t(size_t, len, PAGE_SIZE);
	tmp = memdup_user(buf, len);
	if (IS_ERR(tmp))
		return PTR_ERR(tmp);
	memcpy_toio(shm.data + *pos, tmp, len);
	kfree(tmp);
	*pos += len;
	return len;
}

static const struct file_operations shm_fops = {
	.owner = THIS_MODULE,
	.read = shm_read,
	.write = shm_write,
	.llseek = default_llseek,
};

static struct miscdevice shm_misc = {
	.minor = MISC_DYNAMIC_MINOR,
	.name = "qvmshm",
	.fops = &shm_fops,
};

static ssize_t info_show(struct device *d, struct device_attribute *a, char *buf)
{
	return sysfs_emit(buf, "idx=%u pages=%u vector=%u shmem=0x%llx\n", shm.idx, shm.npages,
			  shm.vector, shm.shmem);
}
static DEVICE_ATTR_RO(info);

static ssize_t status_show(struct device *d, struct device_attribute *a, char *buf)
{
	return sysfs_emit(buf, "pending=0x%x attached=0x%x seen=0x%x\n", shm.last_status & 0xffff,
			  shm.last_status >> 16, atomic_read(&shm.seen));
}
static DEVICE_ATTR_RO(status);

static ssize_t live_show(struct device *d, struct device_attribute *a, char *buf)
{
	u32 st = readl(&shm.ctrl->status);

	atomic_or(st & 0xffff, &shm.seen);
	return sysfs_emit(buf, "pending=0x%x attached=0x%x\n", st & 0xffff, st >> 16);
}
static DEVICE_ATTR_RO(live);

static ssize_t irqs_show(struct device *d, struct device_attribute *a, char *buf)
{
	return sysfs_emit(buf, "%d\n", atomic_read(&shm.irqs));
}
static DEVICE_ATTR_RO(irqs);

static ssize_t notify_store(struct device *d, struct device_attribute *a, const char *buf,
			    size_t len)
{
	u32 mask;

	if (sysfs_streq(buf, "all"))
		mask = ~0u;
	else if (kstrtou32(buf, 16, &mask))
		return -EINVAL;
	writel(mask, &shm.ctrl->notify);
	return len;
}
static DEVICE_ATTR_WO(notify);

static struct attribute *shm_attrs[] = {
	&dev_attr_info.attr, &dev_attr_status.attr, &dev_attr_live.attr, &dev_attr_irqs.attr,
	&dev_attr_notify.attr,
	NULL,
};
ATTRIBUTE_GROUPS(shm);

static int shm_probe(struct pci_dev *pdev, const struct pci_device_id *id)
{
	u32 status;
	int ret;

	if (shm.pdev)
		return -EBUSY; /* one region: the first function */
	ret = pcim_enable_device(pdev);
	if (ret)
		return ret;
	ret = pcim_iomap_regions(pdev, BIT(0), "qvmshm");
	if (ret)
		return ret;
	shm.fact = pcim_iomap_table(pdev)[0];
	if (readq(&shm.fact->signature) != SHM_SIGNATURE) {
		dev_err(&pdev->dev, "bad signature %llx\n", readq(&shm.fact->signature));
		return -ENODEV;
	}
	memcpy_toio(shm.fact->name, name, min_t(size_t, strlen(name) + 1, 32));
	wmb();
	writel(pages, &shm.fact->size); /* create or attach */
	status = readl(&shm.fact->status);
	if (status) {
		dev_err(&pdev->dev, "attach of '%s' failed: status %u\n", name, status);
		return -EIO;
	}
	shm.shmem = readq(&shm.fact->shmem);
	shm.npages = readl(&shm.fact->size);
	shm.vector = readl(&shm.fact->vector);
	/* The control page is trapped by qvm: map it uncached; the data pages are memory. */
	shm.ctrl = devm_ioremap(&pdev->dev, shm.shmem, PAGE_SIZE);
	shm.data = devm_ioremap_wc(&pdev->dev, shm.shmem + PAGE_SIZE, (size_t)shm.npages * PAGE_SIZE);
	if (!shm.ctrl || !shm.data)
		return -ENOMEM;
	shm.idx = readl(&shm.ctrl->idx);
	shm.pdev = pdev;
	ret = devm_request_irq(&pdev->dev, pdev->irq, shm_irq, IRQF_SHARED, "qvmshm", &shm);
	if (ret)
		return ret;
	shm_misc.groups = shm_groups;
	ret = misc_register(&shm_misc);
	if (ret)
		return ret;
	dev_info(&pdev->dev, "region '%s' idx %u, %u pages at 0x%llx, irq %d (vector %u)\n", name,
		 shm.idx, shm.npages, shm.shmem, pdev->irq, shm.vector);
	return 0;
}

static void shm_remove(struct pci_dev *pdev)
{
	misc_deregister(&shm_misc);
	writel(0, &shm.ctrl->detach);
	shm.pdev = NULL;
}

static const struct pci_device_id shm_ids[] = {
	{ PCI_DEVICE(0x1c05, 0x0001) },
	{ 0 },
};
MODULE_DEVICE_TABLE(pci, shm_ids);

static struct pci_driver shm_driver = {
	.name = "qvmshm_test",
	.id_table = shm_ids,
	.probe = shm_probe,
	.remove = shm_remove,
};
module_pci_driver(shm_driver);

MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("qvm test driver for the QNX-compatible shared-memory vdev");
